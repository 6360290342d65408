// Package storetest is the behaviour every store backend must show, written
// against the store's methods rather than any database: Run exercises them
// all, with cases that use two handles on one database. Clock is a settable
// clock for a store's Now.
package storetest

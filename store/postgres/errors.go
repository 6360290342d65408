package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookbay/hookbay/hooks"
)

// translate classifies a database error once, by its SQLSTATE, so that the
// HTTP layer answers each sender what it retries. The original error stays
// in the chain, for the logs.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var he *hooks.Error
	if errors.As(err, &he) || errors.Is(err, ErrClosed) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return fmt.Errorf("%w: %w", hooks.Errorf(hooks.ECONFLICT, "already stored"), err)
		case pe.Code == "40P01", pe.Code == "40001", // deadlock, serialization failure
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutting down, crashed, starting up
			strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"): // insufficient resources
			return unavailable(err)
		}
		return err
	}
	// No answer from the server: it is down, restarting or out of reach.
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) || errors.Is(err, context.DeadlineExceeded) ||
		isConnLost(err) {
		return unavailable(err)
	}
	return err
}

// unavailable marks err as the database being out of reach for now.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", hooks.Errorf(hooks.EUNAVAILABLE, "the store is unavailable; retry later"), err)
}

// isConnLost reports errors of a connection that broke mid-statement or
// could not be made.
func isConnLost(err error) bool {
	var oe *net.OpError
	return errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.As(err, &oe)
}

package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// openError is err, from the first use of the database at path, with the
// reason the path cannot hold a database when one is found: SQLite says
// only "unable to open database file", naming neither the path nor why.
func openError(path string, err error) error {
	if why := unusable(path); why != nil {
		return fmt.Errorf("open store %s: %w", path, why)
	}
	return fmt.Errorf("open store %s: %w", path, err)
}

// unusable says why SQLite cannot create or write the database at path and
// the files it keeps beside it (its WAL and shared memory), or returns nil
// when it finds nothing wrong.
func unusable(path string) error {
	dir := filepath.Dir(path)
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil && !fi.IsDir() {
			if d == dir {
				return fmt.Errorf("%s is a file, not a directory", d)
			}
			return fmt.Errorf("directory %s cannot exist: %s is a file", dir, d)
		}
		if err == nil || filepath.Dir(d) == d {
			break
		}
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("directory %s does not exist", dir)
	} else if err != nil {
		return fmt.Errorf("directory %s: %w", dir, cause(err))
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory, not a database file", path)
	}
	// Permissions are not enough to go by (root ignores them, a read-only
	// mount does not show in them): try what SQLite must do.
	probe, err := os.CreateTemp(dir, ".hookbay-probe-*")
	if err != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, cause(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("database file %s is not writable: %w", path, cause(err))
	}
	return nil
}

// cause is the system's reason inside a path error ("permission denied"),
// the path being already named by the caller.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

package sqlite

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"sort"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrate runs the embedded migrations not yet applied, each in its own
// transaction.
func (db *DB) migrate() error {
	if _, err := db.wdb.Exec(`CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	rows, err := db.wdb.Query(`SELECT name FROM migrations`)
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("read migrations: %w", err)
		}
		if !slices.Contains(names, name) {
			return fmt.Errorf("the database was migrated by a newer hookbay (%s is not one of this version's migrations): run that version or a later one", name)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	rows.Close()
	for _, name := range names {
		if err := db.migrateFile(name); err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
	}
	return nil
}

func (db *DB) migrateFile(name string) error {
	tx, err := db.wdb.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM migrations WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	} else if n > 0 {
		return nil
	}
	buf, err := fs.ReadFile(migrationFS, name)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(string(buf)); err != nil {
		return err
	}
	if _, err := tx.Exec(`INSERT INTO migrations (name) VALUES (?)`, name); err != nil {
		return err
	}
	return tx.Commit()
}

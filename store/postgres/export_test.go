package postgres

// SetSearchWindow makes text searches read at most n records, until the
// returned function restores the window.
func SetSearchWindow(n int64) (restore func()) {
	old := searchWindow
	searchWindow = n
	return func() { searchWindow = old }
}

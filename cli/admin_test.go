package cli

import (
	"os"
	"testing"
)

// TestMain keeps every server this package's tests start off the fixed
// admin port (config.DefaultAdminListen): their admin listeners take a
// free loopback port instead, so that tests neither collide with each
// other nor with a hookbay a developer keeps running.
func TestMain(m *testing.M) {
	adminListenOverride = "127.0.0.1:0"
	os.Exit(m.Run())
}

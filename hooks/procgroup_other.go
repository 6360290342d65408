//go:build !unix

package hooks

import "os/exec"

// ownProcessGroup does nothing where there are no Unix process groups.
func ownProcessGroup(*exec.Cmd) {}

// killGroup kills the command itself: without process groups, what it
// started is left to the operating system.
func killGroup(cmd *exec.Cmd) error { return cmd.Process.Kill() }

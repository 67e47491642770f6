package testengines

import "syscall"

// procAttr kills the server if the test binary dies without stopping it
// (a panic, a -timeout).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

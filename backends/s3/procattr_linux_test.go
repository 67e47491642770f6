package s3

import "syscall"

// procAttr kills the gateway if the test binary dies without stopping it
// (a panic, a -timeout).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

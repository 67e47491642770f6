//go:build !linux

package testengines

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }

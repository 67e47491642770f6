package tuning

import "syscall"

// FileLimit is a process's limit on open files (RLIMIT_NOFILE). Every
// socket is a file, so it bounds the connections one process can hold.
type FileLimit struct {
	// Soft is the limit in force; a process may raise it up to Hard.
	Soft uint64 `json:"soft"`
	// Hard is the ceiling of Soft; only a process with CAP_SYS_RESOURCE
	// may raise it, and never above fs.nr_open.
	Hard uint64 `json:"hard"`
}

// ReadFileLimit returns this process's RLIMIT_NOFILE.
func ReadFileLimit() (FileLimit, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return FileLimit{}, err
	}
	return FileLimit{Soft: rl.Cur, Hard: rl.Max}, nil
}

// RaiseFileLimit raises this process's soft RLIMIT_NOFILE to its hard
// limit, which needs no privilege, and returns the limits then in force
// (the old ones, with the error, if raising failed). It changes only this
// process and the children it starts afterwards. Safe for concurrent use,
// but meant to be called once at start.
func RaiseFileLimit() (FileLimit, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return FileLimit{}, err
	}
	if rl.Cur < rl.Max {
		raised := syscall.Rlimit{Cur: rl.Max, Max: rl.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return FileLimit{Soft: rl.Cur, Hard: rl.Max}, err
		}
		rl = raised
	}
	return FileLimit{Soft: rl.Cur, Hard: rl.Max}, nil
}

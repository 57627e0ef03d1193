// Package logfile is a log file that rotates by size: when the next write
// would take agent.log past its limit, agent.log becomes agent.log.1 (the
// older ones move up to .2, .3 …), the oldest beyond the number kept is
// deleted, and writing goes on in a new agent.log. Plain numbered names, so
// a technician on any OS finds the newest lines in agent.log and the ones
// before in agent.log.1.
//
// A write is never split across files, so a log record (one Write) stays
// whole. When rotation fails — on Windows another program may hold the old
// file open — writing goes on in the current file and rotation is tried
// again after another MaxBytes: losing log lines over it would be worse.
package logfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// Options says when to rotate and what to keep.
type Options struct {
	// MaxBytes is the size at which the file is rotated; default 10 MiB.
	MaxBytes int64
	// Keep is how many rotated files are kept besides the current one;
	// 0 keeps none (the file is emptied instead).
	Keep int
}

// File is an open, rotating log file. It is safe for concurrent use.
type File struct {
	path string
	o    Options

	mu   sync.Mutex
	f    *os.File
	size int64 // of f, counting from where rotation last succeeded or failed
	err  error // the last rotation's failure
}

// Open opens (or creates, owner-only, with its directory) the file at path
// for appending.
func Open(path string, o Options) (*File, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 10 << 20
	}
	if o.Keep < 0 {
		o.Keep = 0
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("logfile: %w", err)
	}
	l := &File{path: path, o: o}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *File) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("logfile: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logfile: %w", err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first when p would take the file past MaxBytes.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	if l.size > 0 && l.size+int64(len(p)) > l.o.MaxBytes {
		l.err = l.rotate()
		if l.f == nil {
			return 0, l.err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// rotate moves the files up by one. On failure the current file is kept
// (reopened if need be) and its size counted from zero, so the next try is
// after another MaxBytes rather than at every write.
func (l *File) rotate() error {
	if err := l.f.Close(); err != nil {
		l.f = nil
		return l.reopen(fmt.Errorf("logfile: close %s: %w", l.path, err))
	}
	l.f = nil
	var err error
	if l.o.Keep == 0 {
		err = os.Truncate(l.path, 0)
	} else {
		err = l.shift()
	}
	if err != nil {
		return l.reopen(err)
	}
	return l.reopen(nil)
}

func (l *File) shift() error {
	oldest := l.name(l.o.Keep)
	if err := os.Remove(oldest); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("logfile: %w", err)
	}
	for i := l.o.Keep - 1; i >= 1; i-- {
		if err := os.Rename(l.name(i), l.name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("logfile: %w", err)
		}
	}
	if err := os.Rename(l.path, l.name(1)); err != nil {
		return fmt.Errorf("logfile: %w", err)
	}
	return nil
}

// reopen opens the current file again after a rotation, counting its size
// from zero whatever happened (see rotate).
func (l *File) reopen(cause error) error {
	if err := l.open(); err != nil {
		return errors.Join(cause, err)
	}
	l.size = 0
	return cause
}

// name is the i-th rotated file: agent.log.1 is the newest.
func (l *File) name(i int) string { return l.path + "." + strconv.Itoa(i) }

// Keep is how many rotated files are kept.
func (l *File) Keep() int { return l.o.Keep }

// Path is the current file.
func (l *File) Path() string { return l.path }

// Err returns the last rotation's failure, nil if it succeeded.
func (l *File) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close closes the file; later writes fail with os.ErrClosed.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

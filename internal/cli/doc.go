// Package cli holds what every bk tool shares: exit codes, the
// "bk-x: error: …" message grammar, signal handling, the version, progress
// bars on a terminal, and the refusal to write binary data to one.
//
// Tools exit in one place only: Run turns the error their action returned into
// an exit code, after deferred clean-up (temp files, ssh children) has run.
package cli

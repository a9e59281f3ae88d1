//go:build !bkprofile

package cli

// profile is a no-op unless the tools are built with -tags bkprofile (see
// profile_bkprofile.go).
func profile(string) (stop func()) { return func() {} }

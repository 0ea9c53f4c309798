//go:build !unix

package sources

// lockDir does nothing where flock is missing: one process per cache
// directory is then the caller's to ensure.
func lockDir(string) (func(), error) { return func() {}, nil }

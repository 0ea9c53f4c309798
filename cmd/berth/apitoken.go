package main

// The status listener's guard: loopback by default; another address needs
// a bearer token (--api-token-file) or an explicit --insecure-api.

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// apiToken reads --api-token-file, and refuses a non-loopback --listen
// without a token unless --insecure-api says so.
func apiToken(o serveOptions) (string, error) {
	if o.apiTokenFile != "" {
		b, err := os.ReadFile(o.apiTokenFile)
		if err != nil {
			return "", usageError{fmt.Errorf("--api-token-file: %w", err)}
		}
		token := strings.TrimSpace(string(b))
		if token == "" {
			return "", usageError{fmt.Errorf("--api-token-file %s is empty: put a token in it (e.g. openssl rand -hex 32)", o.apiTokenFile)}
		}
		return token, nil
	}
	if !isLoopback(o.listen) && !o.insecureAPI {
		return "", usageError{fmt.Errorf("--listen %s is not a loopback address: the status API and /metrics would be open to anyone who reaches it; "+
			"set --api-token-file FILE (clients send its token) or --insecure-api", o.listen)}
	}
	return "", nil
}

// isLoopback reports whether a listen address only accepts connections
// from this machine.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requireToken lets through requests that carry "Authorization: Bearer
// token"; no token: all. The comparison is in constant time, of hashes so
// that not even the length is told.
func requireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte("Bearer " + token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
			http.Error(w, "this berth serve requires a token: send Authorization: Bearer TOKEN (the token of its --api-token-file)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// clientToken is the token the status clients send: --api-token-file,
// else $BERTH_API_TOKEN, else the serve's own token file when this user
// can read it.
func clientToken(flagFile, serveFile string) (string, error) {
	if flagFile != "" {
		b, err := os.ReadFile(flagFile)
		if err != nil {
			return "", usageError{fmt.Errorf("--api-token-file: %w", err)}
		}
		return strings.TrimSpace(string(b)), nil
	}
	if t := os.Getenv("BERTH_API_TOKEN"); t != "" {
		return strings.TrimSpace(t), nil
	}
	if serveFile != "" {
		if b, err := os.ReadFile(serveFile); err == nil {
			return strings.TrimSpace(string(b)), nil
		} else if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrPermission) {
			return "", err
		}
	}
	return "", nil
}

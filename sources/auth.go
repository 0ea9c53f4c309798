package sources

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	xssh "golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// remote is a parsed repository URL.
type remote struct {
	url      string // what go-git fetches from: no password in it
	display  string // what messages show: no user information at all
	protocol string // https, http, ssh, file
	user     string // the URL's user (ssh)
	local    string // the directory, for a local repository
}

// parseRemote validates raw and moves a password found in an https URL
// into auth, so the URL can be stored and shown.
func parseRemote(raw string, auth *GitAuth) (remote, error) {
	if raw == "" {
		return remote{display: "(no URL)"}, errors.New("no repository URL given")
	}
	if filepath.IsAbs(raw) {
		dir := filepath.Clean(raw)
		return remote{url: dir, display: dir, protocol: "file", local: dir}, nil
	}
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			// url.Parse quotes the whole input, password included.
			return remote{display: "(unparsable URL)"}, errors.New("repository URL does not parse")
		}
		switch u.Scheme {
		case "https", "http":
			if u.User != nil {
				if p, ok := u.User.Password(); ok && auth.Token == "" && auth.TokenFunc == nil {
					auth.Token = p
				}
				if auth.Username == "" {
					auth.Username = u.User.Username()
				}
				u.User = nil
			}
			s := u.String()
			return remote{url: s, display: s, protocol: u.Scheme}, nil
		case "ssh":
			r := remote{url: u.String(), protocol: "ssh"}
			if u.User != nil {
				r.user = u.User.Username()
				u.User = nil
			}
			r.display = u.String()
			return r, nil
		case "file":
			if u.Host != "" && u.Host != "localhost" {
				return remote{display: raw}, errors.New("file:// URL must name a local path")
			}
			dir := filepath.Clean(filepath.FromSlash(u.Path))
			return remote{url: dir, display: raw, protocol: "file", local: dir}, nil
		default:
			return remote{display: raw}, fmt.Errorf("unsupported URL scheme %q (want https, http, ssh, file, or an absolute path)", u.Scheme)
		}
	}
	// scp-like: [user@]host:path
	if i := strings.Index(raw, ":"); i > 0 && !strings.Contains(raw[:i], "/") {
		ep, err := transport.NewEndpoint(raw)
		if err == nil && ep.Protocol == "ssh" {
			return remote{url: raw, display: raw, protocol: "ssh", user: ep.User}, nil
		}
	}
	return remote{display: raw}, errors.New("a local repository path must be absolute")
}

// authSource makes the transport's credentials for each fetch.
type authSource struct {
	protocol string
	username string
	token    string
	tokenFn  func(context.Context) (string, error)
	ssh      *gitssh.PublicKeys
	caBundle []byte
}

func newAuthSource(r remote, a GitAuth) (authSource, error) {
	s := authSource{protocol: r.protocol, username: a.Username, token: a.Token, tokenFn: a.TokenFunc, caBundle: a.CABundle}
	if s.username == "" {
		s.username = "x-access-token"
	}
	if r.protocol != "ssh" {
		return s, nil
	}
	if a.SSHKeyFile == "" {
		return s, errors.New("ssh needs GitAuth.SSHKeyFile (ssh-agent is not used)")
	}
	user := r.user
	if user == "" {
		user = a.SSHUser
	}
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, a.SSHKeyPassphrase)
	if err != nil {
		return s, fmt.Errorf("ssh key %s: %w", a.SSHKeyFile, err)
	}
	// go-git would fall back to ~/.ssh/known_hosts and $SSH_KNOWN_HOSTS;
	// berth takes the file explicitly.
	switch {
	case a.KnownHostsFile != "":
		db, err := gitssh.NewKnownHostsDb(a.KnownHostsFile)
		if err != nil {
			return s, fmt.Errorf("known_hosts %s: %w", a.KnownHostsFile, err)
		}
		keys.HostKeyCallback = db.HostKeyCallback()
		// Offer only the key types known_hosts has for this host, so the
		// server does not pick one that cannot be checked.
		if ep, err := transport.NewEndpoint(r.url); err == nil {
			port := ep.Port
			if port == 0 {
				port = 22
			}
			keys.HostKeyAlgorithms = db.HostKeyAlgorithms(net.JoinHostPort(ep.Host, strconv.Itoa(port)))
		}
	case a.InsecureIgnoreHostKey:
		keys.HostKeyCallback = xssh.InsecureIgnoreHostKey()
	default:
		return s, errors.New("ssh needs GitAuth.KnownHostsFile, or InsecureIgnoreHostKey to skip checking the server's key")
	}
	s.ssh = keys
	return s, nil
}

// method returns the transport auth for one fetch, and the secrets to keep
// out of error text.
func (s authSource) method(ctx context.Context) (transport.AuthMethod, []string, error) {
	switch s.protocol {
	case "ssh":
		return s.ssh, nil, nil
	case "https", "http":
		tok := s.token
		if s.tokenFn != nil {
			t, err := s.tokenFn(ctx)
			if err != nil {
				return nil, []string{t}, fmt.Errorf("get token: %w", err)
			}
			tok = t
		}
		if tok == "" {
			return nil, nil, nil
		}
		return &githttp.BasicAuth{Username: s.username, Password: tok}, []string{tok}, nil
	}
	return nil, nil, nil
}

// isAuthFailure reports whether a fetch failed on credentials or on the
// server's host key.
func isAuthFailure(err error) bool {
	var keyErr *xknownhosts.KeyError
	var revoked *xknownhosts.RevokedError
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod),
		errors.As(err, &keyErr), errors.As(err, &revoked):
		return true
	}
	// x/crypto/ssh reports a refused key only in text ("ssh: unable to
	// authenticate, attempted methods [none publickey], no supported
	// methods remain"); this is the one place berth reads a message.
	return strings.Contains(err.Error(), "ssh: unable to authenticate")
}

package sources

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshKey makes an ed25519 key pair, writes the private key to a file, and
// returns the file and the public key.
func sshKey(t *testing.T) (string, ssh.PublicKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return file, signer.PublicKey(), signer
}

// serveSSH runs an ssh server on 127.0.0.1 that accepts the client key and
// runs git-upload-pack for repositories under root, as a Git host does.
func serveSSH(t *testing.T, root string, client ssh.PublicKey, host ssh.Signer) string {
	t.Helper()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) == string(client.Marshal()) {
				return nil, nil
			}
			return nil, io.EOF
		},
	}
	cfg.AddHostKey(host)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveSSHConn(c, cfg, root)
		}
	}()
	return l.Addr().String()
}

func serveSSHConn(c net.Conn, cfg *ssh.ServerConfig, root string) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, reqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range reqs {
				if req.Type != "exec" || len(req.Payload) < 4 {
					req.Reply(false, nil)
					continue
				}
				// git-upload-pack '/repo'
				cmdline := string(req.Payload[4:])
				prog, arg, _ := strings.Cut(cmdline, " ")
				if prog != "git-upload-pack" {
					req.Reply(false, nil)
					continue
				}
				req.Reply(true, nil)
				cmd := exec.Command("git-upload-pack", filepath.Join(root, strings.Trim(arg, "'")))
				cmd.Env = gitEnv(root)
				cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
				stdin, _ := cmd.StdinPipe()
				go func() { io.Copy(stdin, ch); stdin.Close() }()
				status := uint32(0)
				if err := cmd.Run(); err != nil {
					status = 1
				}
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
				return
			}
		}()
	}
}

func TestGitSSH(t *testing.T) {
	root := t.TempDir()
	run(t, root, "init", "-q", "-b", "main", "repo")
	want := commit(t, filepath.Join(root, "repo"), "first", map[string]string{"a.cue": "a: 1\n"})
	keyFile, pub, _ := sshKey(t)
	_, _, hostSigner := sshKey(t)
	_, _, otherHost := sshKey(t)
	addr := serveSSH(t, root, pub, hostSigner)
	url := "ssh://git@" + addr + "/repo"

	knownHosts := func(key ssh.PublicKey) string {
		f := filepath.Join(t.TempDir(), "known_hosts")
		line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
		if err := os.WriteFile(f, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}

	t.Run("key and known host", func(t *testing.T) {
		g := newGit(t, GitOptions{URL: url, Auth: GitAuth{SSHKeyFile: keyFile, KnownHostsFile: knownHosts(hostSigner.PublicKey())}})
		rev, err := g.Latest(ctxT(t))
		if err != nil || rev.Hash != want {
			t.Fatalf("Latest: %v, %v; want %s", rev.Hash, err, want)
		}
	})
	t.Run("host key mismatch", func(t *testing.T) {
		g := newGit(t, GitOptions{URL: url, Auth: GitAuth{SSHKeyFile: keyFile, KnownHostsFile: knownHosts(otherHost.PublicKey())}})
		_, err := g.Latest(ctxT(t))
		if !isErr[*AuthError](err) {
			t.Fatalf("Latest: %v, want AuthError", err)
		}
	})
	t.Run("key refused", func(t *testing.T) {
		otherKey, _, _ := sshKey(t)
		g := newGit(t, GitOptions{URL: url, Auth: GitAuth{SSHKeyFile: otherKey, InsecureIgnoreHostKey: true}})
		_, err := g.Latest(ctxT(t))
		if !isErr[*AuthError](err) || !strings.HasPrefix(err.Error(), "source git ssh://"+addr+"/repo: fetch main: ") {
			t.Fatalf("Latest: %v, want AuthError", err)
		}
	})
	t.Run("no known_hosts", func(t *testing.T) {
		_, err := NewGit(GitOptions{URL: url, CacheDir: t.TempDir(), Auth: GitAuth{SSHKeyFile: keyFile}})
		if err == nil || !strings.Contains(err.Error(), "KnownHostsFile") {
			t.Errorf("NewGit without known_hosts: %v", err)
		}
	})
}

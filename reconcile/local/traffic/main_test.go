package traffic

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/replica"
)

// TestMain makes the test binary a replica when BERTH_TEST_REPLICA is set:
// a real process serving real HTTP, started by procStarter.
func TestMain(m *testing.M) {
	if os.Getenv("BERTH_TEST_REPLICA") == "1" {
		os.Exit(replica.Main())
	}
	os.Exit(m.Run())
}

// procStarter starts replicas as processes of this test binary, each on a
// port of its own, with the workload's env.
type procStarter struct {
	mu sync.Mutex
	n  int
	// procs are the live replicas, by id.
	procs map[string]*proc
}

type proc struct {
	id     string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *proc) ID() string                                       { return p.id }
func (p *proc) Exited() <-chan struct{}                          { return p.exited }
func (p *proc) Target(berth.Port) Target                         { return Target{Host: "127.0.0.1", Port: p.port} }
func (p *proc) kill()                                            { p.cmd.Process.Kill() }
func newProcStarter() *procStarter                               { return &procStarter{procs: map[string]*proc{}} }
func (s *procStarter) Stop(ctx context.Context, r Replica) error { return s.stop(r.(*proc)) }

func (s *procStarter) Start(ctx context.Context, w berth.Workload) (Replica, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "BERTH_TEST_REPLICA=1", "PORT="+strconv.Itoa(port))
	for k, v := range w.Env {
		cmd.Env = append(cmd.Env, k+"="+v.Value)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.n++
	p := &proc{id: "r" + strconv.Itoa(s.n), port: port, cmd: cmd, exited: make(chan struct{})}
	s.procs[p.id] = p
	s.mu.Unlock()
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

func (s *procStarter) stop(p *proc) error {
	s.mu.Lock()
	delete(s.procs, p.id)
	s.mu.Unlock()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.kill()
		<-p.exited
	}
	return nil
}

func (s *procStarter) live() []*proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*proc
	for _, p := range s.procs {
		out = append(out, p)
	}
	return out
}

func (s *procStarter) closeAll() {
	for _, p := range s.live() {
		s.stop(p)
	}
}

// load sends GETs to url from workers goroutines until stop is closed,
// and counts the requests, the failed ones and the bodies.
type load struct {
	total, failed atomic.Int64
	mu            sync.Mutex
	bodies        map[string]int
	firstErr      error
	done          chan struct{}
}

func runLoad(url string, workers int, stop <-chan struct{}) *load {
	l := &load{bodies: map[string]int{}, done: make(chan struct{})}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				l.total.Add(1)
				body, err := get(client, url)
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					if l.firstErr == nil {
						l.firstErr = err
					}
				} else {
					l.bodies[body]++
				}
				l.mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	return l
}

// wait returns once every worker has stopped.
func (l *load) wait() { <-l.done }

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b := make([]byte, 64)
	n, _ := resp.Body.Read(b)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b[:n])
	}
	return string(b[:n]), nil
}

func httpClient() *http.Client { return &http.Client{Timeout: 10 * time.Second} }

// Package ghfake is an in-memory GitHub REST API for tests, in GitHub's
// exact shape for the endpoints berth uses: pull requests, their files and
// reviews, team memberships, commit statuses, issue comments and the pull
// requests of a commit. It records every request (method, path, query and
// JSON body, with the Authorization header kept apart) so a test can assert
// exactly what berth sent, and it can be told to fail requests (5xx, rate
// limits) to exercise retries.
//
// It is a fake for the client's tests, not a GitHub: Gitea's end-to-end
// tests use a real forge.
package ghfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Request is one request as the server received it.
type Request struct {
	Method string
	Path   string
	// Query is the query string with its parameters sorted.
	Query string
	// Body is the JSON body re-encoded with sorted keys ("" when none).
	Body string
	Auth string
}

// String is "POST /repos/o/r/statuses/abc {json}".
func (r Request) String() string {
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	if r.Body != "" {
		s += " " + r.Body
	}
	return s
}

// Status is a commit status as GitHub stores it.
type Status struct {
	ID          int64  `json:"id"`
	State       string `json:"state"`
	Description string `json:"description"`
	Context     string `json:"context"`
	TargetURL   string `json:"target_url,omitempty"`
	CreatedAt   string `json:"created_at"`
}

// Comment is an issue comment.
type Comment struct {
	ID   int64  `json:"id"`
	Body string `json:"body"`
	User User   `json:"user"`
}

// User is a GitHub user.
type User struct {
	Login string `json:"login"`
}

// Review is a pull request review.
type Review struct {
	ID    int64  `json:"id"`
	User  User   `json:"user"`
	State string `json:"state"` // APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
}

// PR is a pull request as the fake serves it.
type PR struct {
	Number   int
	Author   string
	State    string // "open" (default) or "closed"
	HeadSHA  string
	HeadRef  string
	HeadRepo string // "owner/name" (default: the repository: not a fork)
	BaseSHA  string
	BaseRef  string
	Merged   bool
	MergeSHA string
	Files    []string
	Reviews  []Review
}

// Failure makes matching requests fail.
type Failure struct {
	Method, Path string // Path is a regular expression over the URL path
	Times        int    // how many requests fail
	Status       int
	Header       http.Header
	Body         string
}

// Server is the fake API.
type Server struct {
	*httptest.Server
	Owner, Repo string
	// Login is the authenticated user (default "berth-bot").
	Login string

	mu        sync.Mutex
	requests  []Request
	prs       map[int]*PR
	statuses  map[string][]Status // newest first
	comments  map[int][]Comment
	members   map[string]map[string]bool // team -> login
	commitPRs map[string][]int
	failures  []*Failure
	parents   map[string][]string
	nextID    int64
	pageSize  int
}

// New starts a fake for repository owner/repo.
func New(owner, repo string) *Server {
	s := &Server{Owner: owner, Repo: repo, Login: "berth-bot", prs: map[int]*PR{}, statuses: map[string][]Status{},
		comments: map[int][]Comment{}, parents: map[string][]string{}, members: map[string]map[string]bool{}, commitPRs: map[string][]int{}, nextID: 1000}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL of the API, for go-github's BaseURL.
func (s *Server) APIURL() string { return s.Server.URL + "/" }

// AddPR adds or replaces a pull request.
func (s *Server) AddPR(p PR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.State == "" {
		p.State = "open"
	}
	if p.HeadRepo == "" {
		p.HeadRepo = s.Owner + "/" + s.Repo
	}
	s.prs[p.Number] = &p
}

// UpdatePR changes a pull request.
func (s *Server) UpdatePR(n int, f func(*PR)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.prs[n])
}

// AddMember puts login in team ("org/slug").
func (s *Server) AddMember(team, login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members[team] == nil {
		s.members[team] = map[string]bool{}
	}
	s.members[team][login] = true
}

// AddComment adds a comment by user to pull request n.
func (s *Server) AddComment(n int, user, body string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.comments[n] = append(s.comments[n], Comment{ID: s.nextID, Body: body, User: User{Login: user}})
	return s.nextID
}

// AddStatus puts a status on a commit, as someone else posted it.
func (s *Server) AddStatus(sha string, st Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	st.ID = s.nextID
	s.statuses[sha] = append([]Status{st}, s.statuses[sha]...)
}

// SetCommitPRs says which pull requests a commit belongs to.
func (s *Server) SetCommitPRs(sha string, prs ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitPRs[sha] = prs
}

// SetParents sets a commit's parents.
func (s *Server) SetParents(sha string, parents ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parents[sha] = parents
}

// InstallationToken prefixes the tokens the fake issues to GitHub App
// installations (followed by the installation ID).
const InstallationToken = "ghs_fakeinstallationtoken"

// SetPageSize makes list endpoints return at most n items a page (and
// Link headers), whatever per_page asks.
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

// Fail makes the next matching requests fail.
func (s *Server) Fail(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &f)
}

// Requests returns the requests received so far, and forgets them.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.requests
	s.requests = nil
	return out
}

// Statuses returns a commit's statuses, newest first.
func (s *Server) Statuses(sha string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.statuses[sha]...)
}

// Comments returns a pull request's comments, oldest first.
func (s *Server) Comments(n int) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Comment(nil), s.comments[n]...)
}

var routes = []struct {
	method string
	re     *regexp.Regexp
	name   string
}{
	{"GET", regexp.MustCompile(`^/user$`), "user"},
	{"POST", regexp.MustCompile(`^/app/installations/(\d+)/access_tokens$`), "installation-token"},
	{"GET", regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/git/commits/([0-9a-f]+)$`), "commit"},
	{"GET", regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/pulls/(\d+)$`), "pr"},
	{"GET", regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/pulls$`), "prs"},
	{"GET", regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/pulls/(\d+)/files$`), "files"},
	{"GET", regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/pulls/(\d+)/reviews$`), "reviews"},
	{"GET", regexp.MustCompile(`^/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)$`), "membership"},
	{"GET", regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/commits/([0-9a-f]+)/statuses$`), "statuses"},
	{"POST", regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]+)$`), "create-status"},
	{"GET", regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$`), "comments"},
	{"POST", regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$`), "create-comment"},
	{"PATCH", regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/issues/comments/(\d+)$`), "edit-comment"},
	{"DELETE", regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/issues/comments/(\d+)$`), "delete-comment"},
	{"GET", regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/commits/([0-9a-f]+)/pulls$`), "commit-prs"},
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query().Encode(), Auth: r.Header.Get("Authorization")}
	if len(bytes.TrimSpace(body)) > 0 {
		var v any
		if err := json.Unmarshal(body, &v); err == nil {
			var b bytes.Buffer
			enc := json.NewEncoder(&b) // map keys sorted
			enc.SetEscapeHTML(false)
			enc.Encode(v)
			req.Body = strings.TrimSuffix(b.String(), "\n")
		} else {
			req.Body = string(body)
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	for _, f := range s.failures {
		if f.Times > 0 && f.Method == r.Method && regexp.MustCompile(f.Path).MatchString(r.URL.Path) {
			f.Times--
			s.mu.Unlock()
			for k, vs := range f.Header {
				for _, v := range vs {
					w.Header().Add(k, v)
				}
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.Status)
			io.WriteString(w, f.Body)
			return
		}
	}
	s.mu.Unlock()

	if r.Header.Get("Authorization") == "" {
		writeJSON(w, 401, map[string]string{"message": "Requires authentication"})
		return
	}
	for _, rt := range routes {
		if rt.method != r.Method {
			continue
		}
		m := rt.re.FindStringSubmatch(r.URL.Path)
		if m == nil {
			continue
		}
		if strings.HasPrefix(r.URL.Path, "/repos/") && (m[1] != s.Owner || m[2] != s.Repo) {
			writeJSON(w, 404, map[string]string{"message": "Not Found"})
			return
		}
		s.handle(w, r, rt.name, m, body)
		return
	}
	writeJSON(w, 404, map[string]string{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, name string, m []string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	num := func(i int) int { n, _ := strconv.Atoi(m[i]); return n }
	switch name {
	case "user":
		writeJSON(w, 200, map[string]any{"login": s.Login, "id": 1, "type": "User"})
	case "installation-token":
		s.installationToken(w, r, m[1])
	case "commit":
		parents := []any{}
		for _, p := range s.parents[m[3]] {
			parents = append(parents, map[string]string{"sha": p})
		}
		writeJSON(w, 200, map[string]any{"sha": m[3], "parents": parents})
	case "pr":
		if p, ok := s.pr(w, num(3)); ok {
			writeJSON(w, 200, s.prJSON(p))
		}
	case "prs":
		s.listPRs(w, r)
	case "files":
		if p, ok := s.pr(w, num(3)); ok {
			s.listFiles(w, r, p)
		}
	case "reviews":
		if p, ok := s.pr(w, num(3)); ok {
			s.listReviews(w, r, p)
		}
	case "membership":
		team := m[1] + "/" + m[2]
		if s.members[team][m[3]] {
			writeJSON(w, 200, map[string]any{"state": "active", "role": "member"})
			return
		}
		writeJSON(w, 404, map[string]string{"message": "Not Found"})
	case "statuses":
		var list []any
		for _, st := range s.statuses[m[3]] {
			list = append(list, st)
		}
		s.page(w, r, list)
	case "create-status":
		s.createStatus(w, m[3], body)
	case "comments":
		var list []any
		for _, c := range s.comments[num(3)] {
			list = append(list, c)
		}
		s.page(w, r, list)
	case "create-comment":
		s.createComment(w, num(3), body)
	case "edit-comment", "delete-comment":
		id, _ := strconv.ParseInt(m[3], 10, 64)
		s.editComment(w, id, name == "delete-comment", body)
	case "commit-prs":
		var list []any
		for _, n := range s.commitPRs[m[3]] {
			if p, ok := s.prs[n]; ok {
				list = append(list, s.prJSON(p))
			}
		}
		s.page(w, r, list)
	}
}

// installationToken answers a GitHub App, which authenticates with a
// JWT, then uses the installation token this returns.
func (s *Server) installationToken(w http.ResponseWriter, r *http.Request, installation string) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		writeJSON(w, 401, map[string]string{"message": "A JSON web token could not be decoded"})
		return
	}
	writeJSON(w, 201, map[string]any{"token": InstallationToken + installation, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
}

// pr finds pull request n, or answers 404.
func (s *Server) pr(w http.ResponseWriter, n int) (*PR, bool) {
	p, ok := s.prs[n]
	if !ok {
		writeJSON(w, 404, map[string]string{"message": "Not Found"})
	}
	return p, ok
}

// listPRs lists the pull requests, newest first, filtered by ?state=.
func (s *Server) listPRs(w http.ResponseWriter, r *http.Request) {
	var list []any
	var ns []int
	for n := range s.prs {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	slices.Reverse(ns) // newest first
	for _, n := range ns {
		if p := s.prs[n]; r.URL.Query().Get("state") == "" || p.State == r.URL.Query().Get("state") {
			list = append(list, s.prJSON(p))
		}
	}
	s.page(w, r, list)
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request, p *PR) {
	var list []any
	for _, f := range p.Files {
		list = append(list, map[string]any{"sha": "0000000000000000000000000000000000000000", "filename": f, "status": "modified",
			"additions": 1, "deletions": 0, "changes": 1})
	}
	s.page(w, r, list)
}

func (s *Server) listReviews(w http.ResponseWriter, r *http.Request, p *PR) {
	var list []any
	for _, rv := range p.Reviews {
		list = append(list, map[string]any{"id": rv.ID, "user": map[string]any{"login": rv.User.Login}, "state": rv.State,
			"commit_id": p.HeadSHA})
	}
	s.page(w, r, list)
}

// createStatus records a commit status, newest first, refusing what
// GitHub refuses (a description over 140 characters, a context over 255).
func (s *Server) createStatus(w http.ResponseWriter, sha string, body []byte) {
	var in Status
	if err := json.Unmarshal(body, &in); err != nil || in.State == "" {
		writeJSON(w, 422, map[string]string{"message": "Validation Failed"})
		return
	}
	if utf8.RuneCountInString(in.Description) > 140 || utf8.RuneCountInString(in.Context) > 255 {
		writeJSON(w, 422, map[string]string{"message": "Validation Failed: description is too long (maximum is 140 characters)"})
		return
	}
	s.nextID++
	in.ID = s.nextID
	in.CreatedAt = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC).Format(time.RFC3339)
	s.statuses[sha] = append([]Status{in}, s.statuses[sha]...)
	writeJSON(w, 201, in)
}

// createComment adds a comment by s.Login to pull request n, refusing a
// body over GitHub's 65,536 characters.
func (s *Server) createComment(w http.ResponseWriter, n int, body []byte) {
	var in Comment
	if err := json.Unmarshal(body, &in); err != nil || in.Body == "" {
		writeJSON(w, 422, map[string]string{"message": "Validation Failed"})
		return
	}
	if len(in.Body) > 65536 {
		writeJSON(w, 422, map[string]string{"message": "Validation Failed: body is too long (maximum is 65536 characters)"})
		return
	}
	s.nextID++
	c := Comment{ID: s.nextID, Body: in.Body, User: User{Login: s.Login}}
	s.comments[n] = append(s.comments[n], c)
	writeJSON(w, 201, c)
}

// editComment edits or deletes comment id; only its author may.
func (s *Server) editComment(w http.ResponseWriter, id int64, del bool, body []byte) {
	for n, cs := range s.comments {
		for i, c := range cs {
			if c.ID != id {
				continue
			}
			if c.User.Login != s.Login {
				writeJSON(w, 403, map[string]string{"message": "Must have admin rights to Repository."})
				return
			}
			if del {
				s.comments[n] = append(cs[:i:i], cs[i+1:]...)
				w.WriteHeader(204)
				return
			}
			var in Comment
			if err := json.Unmarshal(body, &in); err != nil || len(in.Body) > 65536 {
				writeJSON(w, 422, map[string]string{"message": "Validation Failed"})
				return
			}
			cs[i].Body = in.Body
			writeJSON(w, 200, cs[i])
			return
		}
	}
	writeJSON(w, 404, map[string]string{"message": "Not Found"})
}

func (s *Server) prJSON(p *PR) map[string]any {
	repo := func(full string) map[string]any {
		return map[string]any{"full_name": full, "clone_url": s.Server.URL + "/" + full + ".git"}
	}
	out := map[string]any{
		"number": p.Number, "state": p.State, "user": map[string]any{"login": p.Author},
		"head":   map[string]any{"sha": p.HeadSHA, "ref": p.HeadRef, "repo": repo(p.HeadRepo)},
		"base":   map[string]any{"sha": p.BaseSHA, "ref": p.BaseRef, "repo": repo(s.Owner + "/" + s.Repo)},
		"merged": p.Merged,
	}
	if p.Merged {
		out["merge_commit_sha"] = p.MergeSHA
		out["merged_at"] = "2026-11-21T10:00:00Z"
	}
	return out
}

// page serves a list with GitHub's pagination (per_page, page, Link).
func (s *Server) page(w http.ResponseWriter, r *http.Request, list []any) {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 {
		per = 30
	}
	if s.pageSize > 0 && s.pageSize < per {
		per = s.pageSize
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if page <= 0 {
		page = 1
	}
	start := min((page-1)*per, len(list))
	end := min(start+per, len(list))
	if end < len(list) {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(page+1))
		w.Header().Set("Link", fmt.Sprintf(`<%s%s?%s>; rel="next"`, s.Server.URL, r.URL.Path, q.Encode()))
	}
	out := list[start:end]
	if out == nil {
		out = []any{}
	}
	writeJSON(w, 200, out)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

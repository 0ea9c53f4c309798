package dash

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"time"

	"github.com/berth-gpu/berth/status"
)

//go:embed templates
var templates embed.FS

// pages are parsed once: each page's template with the shared layout.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"workloads", "workload", "queues", "gpus", "teams", "audit"} {
		out[name] = template.Must(template.New("layout.html").ParseFS(templates, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// page is what the layout shows around every page.
type page struct {
	Nav      string // which tab is current
	Title    string
	Revision string
	Applied  string
	Commit   link
	Error    string
	Invalid  []string
	Now      string
}

func newPage(d Data, nav, title string) page {
	p := page{Nav: nav, Title: title, Revision: d.Revision, Error: d.Error, Invalid: d.Invalid, Commit: d.commit()}
	if d.Applied != d.Revision {
		p.Applied = d.Applied
	}
	if !d.Now.IsZero() {
		p.Now = status.FormatTime(d.Now)
	}
	return p
}

// whoSlot is where a page's header names who reads it. Pages are drawn
// once per reconcile and shared by every reader (serve keeps them), so the
// layout draws the slot empty, the same for all, and SignedIn fills it in
// for one reader as the page is sent.
const whoSlot = `<div class="who"></div>`

// SignedIn is page (as drawn by this package) with login, who signed in
// with the forge, named in its header beside a button that signs out.
// Without a login (the pages are open, or the API token signed in) it is
// page itself.
func SignedIn(page []byte, login string) []byte {
	i := bytes.Index(page, []byte(whoSlot))
	if login == "" || i < 0 {
		return page
	}
	who := `<div class="who">signed in as <b id="signed-in-as">` + template.HTMLEscapeString(login) +
		`</b> <form method="post" action="/logout"><button type="submit">sign out</button></form></div>`
	out := make([]byte, 0, len(page)+len(who))
	out = append(out, page[:i]...)
	out = append(out, who...)
	return append(out, page[i+len(whoSlot):]...)
}

// render executes a page into w through a buffer, so that a template
// error is returned before anything is half written.
func render(w io.Writer, name string, v any) error {
	t, ok := pages[name]
	if !ok {
		return fmt.Errorf("dash: no page %q", name)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return fmt.Errorf("dash: page %s: %w", name, err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return status.FormatTime(t)
}

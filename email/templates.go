package email

import (
	"bytes"
	"embed"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

//go:embed templates/*.txt templates/*.html
var templateFiles embed.FS

// template is one kind of email: its text file defines "subject" and
// "text", its HTML file "subject" and "content" inside the shared layout.
type template struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// templates holds every kind, parsed once; a broken template fails every
// test at start-up.
var templates = map[string]template{
	"token_expiring": mustTemplate("token_expiring"),
	"token_created":  mustTemplate("token_created"),
	"member_added":   mustTemplate("member_added"),
	"invitation":     mustTemplate("invitation"),
}

func mustTemplate(name string) template {
	return template{
		text: texttemplate.Must(texttemplate.ParseFS(templateFiles, "templates/"+name+".txt")),
		html: htmltemplate.Must(htmltemplate.ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html")),
	}
}

// render returns the subject and both bodies of an email of the named
// template with data.
func render(name string, data any) (subject, text, html string, err error) {
	t := templates[name]
	var s, b, h bytes.Buffer
	if err = t.text.ExecuteTemplate(&s, "subject", data); err != nil {
		return
	}
	if err = t.text.ExecuteTemplate(&b, "text", data); err != nil {
		return
	}
	if err = t.html.ExecuteTemplate(&h, "layout", data); err != nil {
		return
	}
	// A subject is one line, whatever a token's name holds.
	subject = strings.Join(strings.Fields(s.String()), " ")
	return subject, strings.TrimLeft(b.String(), "\n"), h.String(), nil
}

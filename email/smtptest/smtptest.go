// Package smtptest runs a real SMTP server for tests: Python's aiosmtpd
// (Debian python3-aiosmtpd), with STARTTLS, implicit TLS and AUTH as
// asked, writing every message it accepts to a folder the test reads. A
// test is skipped without it, and fails under CI (CI set), where .ci/run
// installs it.
package smtptest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

//go:embed smtpd.py
var script []byte

// Server is a running aiosmtpd.
type Server struct {
	t    testing.TB
	dir  string
	Port int
	cmd  *exec.Cmd
}

// Options choose what the server requires. Port 0 picks a free one.
type Options struct {
	// Host is the IP address to listen on; default 127.0.0.1.
	Host string
	Port int
	// CertFile and KeyFile turn TLS on: STARTTLS, required, or with
	// ImplicitTLS TLS from the first byte.
	CertFile, KeyFile string
	ImplicitTLS       bool
	// User and Password require AUTH (over TLS unless ImplicitTLS).
	User, Password string
	// RefuseLinks refuses every message holding a link with a 550 reply
	// that quotes the link, as some content filters do.
	RefuseLinks bool
}

// python returns a python3 that has aiosmtpd: skipped locally without
// one, a failure under CI (.ci/run installs python3-aiosmtpd).
func python(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import aiosmtpd").Run() == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no python3 with aiosmtpd (.ci/run installs python3-aiosmtpd)")
	}
	t.Skip("no python3 with aiosmtpd (apt-get install python3-aiosmtpd)")
	return ""
}

// Start starts a server; it is stopped when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	py := python(t)
	dir := t.TempDir()
	path := filepath.Join(t.TempDir(), "smtpd.py")
	if err := os.WriteFile(path, script, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{path, dir, strconv.Itoa(o.Port)}
	if o.Host != "" {
		args = append(args, "--host", o.Host)
	}
	if o.CertFile != "" {
		args = append(args, "--cert", o.CertFile, "--key", o.KeyFile)
	}
	if o.ImplicitTLS {
		args = append(args, "--implicit-tls")
	}
	if o.User != "" {
		args = append(args, "--user", o.User, "--password", o.Password)
	}
	if o.RefuseLinks {
		args = append(args, "--refuse-links")
	}
	cmd := exec.Command(py, args...)
	cmd.Stderr = io.Discard
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, dir: dir, cmd: cmd}
	t.Cleanup(s.Stop)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("smtpd did not start: %v", err)
	}
	go io.Copy(io.Discard, out)
	if s.Port, err = strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "PORT ")); err != nil {
		t.Fatalf("smtpd said %q", line)
	}
	return s
}

// Stop ends the server (what it received stays readable).
func (s *Server) Stop() {
	if s.cmd.Process != nil && s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// Message is one message as the server got it.
type Message struct {
	MailFrom      string   `json:"mail_from"`
	RcptTos       []string `json:"rcpt_tos"`
	TLS           bool     `json:"tls"`
	Authenticated bool     `json:"authenticated"`
	Data          string   `json:"data"`

	Subject     string
	ContentType string
	Text, HTML  string // the decoded alternatives
}

// Messages returns what arrived so far, each parsed.
func (s *Server) Messages() []*Message {
	s.t.Helper()
	files, err := filepath.Glob(filepath.Join(s.dir, "*.json"))
	if err != nil {
		s.t.Fatal(err)
	}
	var out []*Message
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			s.t.Fatal(err)
		}
		var r Message
		if err := json.Unmarshal(b, &r); err != nil {
			s.t.Fatal(err)
		}
		parse(s.t, &r)
		out = append(out, &r)
	}
	return out
}

// parse reads the message's subject and its multipart/alternative parts,
// decoding the transfer encoding.
func parse(t testing.TB, r *Message) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(r.Data))
	if err != nil {
		t.Fatalf("message does not parse: %v\n%s", err, r.Data)
	}
	dec := new(mime.WordDecoder)
	if r.Subject, err = dec.DecodeHeader(m.Header.Get("Subject")); err != nil {
		t.Fatal(err)
	}
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	r.ContentType = mediaType
	if mediaType != "multipart/alternative" {
		return
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			r.Text = string(b)
		case "text/html":
			r.HTML = string(b)
		}
	}
}

// Certificate writes a self-signed certificate for 127.0.0.1 and
// localhost and its key into a temporary folder, and returns their paths
// and a pool trusting the certificate.
func Certificate(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	return CertificateFor(t, net.ParseIP("127.0.0.1"))
}

// CertificateFor is Certificate for localhost and the given addresses.
func CertificateFor(t testing.TB, ips ...net.IP) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "keygate test smtpd"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  ips,
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// OutsideIP returns an address of this machine that is not a loopback
// one, for a server that mail to it crosses a network: what keygate may
// not send to in plain text. A test is skipped on a machine with none
// (a container without a network), and fails under CI.
func OutsideIP(t testing.TB) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() && n.IP.To4() != nil {
			return n.IP
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this machine has no IPv4 address but loopback ones")
	}
	t.Skip("this machine has no IPv4 address but loopback ones")
	return nil
}

// FreePort returns a port nothing listens on (just now).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

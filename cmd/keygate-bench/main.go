// Command keygate-bench measures keygate side by side with what it is
// compared to: the upstream alone, a bare httputil.ReverseProxy, and nginx
// doing the same job (token check, rate limit, keepalive proxy), and
// keygate's forward-auth behind nginx beside the two ceilings of any
// forward-auth there (nginx answering its own auth subrequest, a bare Go
// handler answering it, and the same handler answering with a copy of
// keygate's answer). It builds keygate, starts every server on this
// machine, runs wrk against each in interleaved rounds and prints one table.
//
//	go run ./cmd/keygate-bench run            # what the README's table comes from
//	go run ./cmd/keygate-bench upstream -listen 127.0.0.1:19100
//	go run ./cmd/keygate-bench proxy -listen 127.0.0.1:19101 -upstream http://127.0.0.1:19100
//	go run ./cmd/keygate-bench auth -listen 127.0.0.1:19109
//	go run ./cmd/keygate-bench auth -listen 127.0.0.1:19111 -answer keygate-answer.txt
//
// It needs Debian's nginx and wrk (bench/run.sh installs them). Numbers
// are printed, never judged: nothing here fails on a figure.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCommand(os.Args[2:])
	case "upstream":
		err = upstreamCommand(os.Args[2:])
	case "proxy":
		err = proxyCommand(os.Args[2:])
	case "auth":
		err = authCommand(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "keygate-bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: keygate-bench run|upstream|proxy|auth [flags]")
	os.Exit(2)
}

// upstreamBody is what the upstream answers: a small JSON page, as an API
// behind keygate would.
const upstreamBody = `{"data":[{"id":1,"name":"Blue Dream","state":"California"},{"id":2,"name":"OG Kush","state":"Colorado"}],"page":1}`

func upstreamCommand(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:19100", "address to listen on")
	fs.Parse(args)
	body := []byte(upstreamBody)
	return http.ListenAndServe(*listen, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
}

// proxyCommand is the bare Go reverse proxy: the standard library's
// httputil.ReverseProxy with as many idle upstream connections as wrk
// opens, and nothing else.
func proxyCommand(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:19101", "address to listen on")
	upstream := fs.String("upstream", "http://127.0.0.1:19100", "upstream URL")
	fs.Parse(args)
	u, err := url.Parse(*upstream)
	if err != nil {
		return err
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	}
	return http.ListenAndServe(*listen, proxy)
}

// authCommand is the cheapest forward-auth answer a Go net/http server can
// give: 200 with an organization header, or with a copy of keygate's
// whole answer (-answer), for every request. Behind nginx's auth_request
// it shows what the subrequest costs before keygate checks anything.
// -timeouts and -ballast give it, one at a time, what keygate's server
// has beyond a handler (its listener timeouts, a live heap to mark), to
// tell their cost from the check's.
func authCommand(args []string) error {
	fs := flag.NewFlagSet("auth", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:19109", "address to listen on")
	answer := fs.String("answer", "", "file of \"Name: value\" header lines to answer with, verbatim (e.g. keygate's own answer, captured with curl -D); default: Cache-Control and X-Keygate-Org only")
	timeouts := fs.String("timeouts", "", "serve with keygate's listener timeouts instead of net/http's defaults: header (read header timeout 10s), idle (idle timeout 120s) or both")
	ballast := fs.Int("ballast", 0, "MiB of live, pointer-holding heap to keep (as a server with caches and templates has), so the garbage collector marks it every cycle")
	fs.Parse(args)
	srv := &http.Server{Addr: *listen, Handler: http.HandlerFunc(allowEveryone)}
	srv.MaxHeaderBytes = 64 << 10 // keygate's; no cost either way
	switch *timeouts {
	case "":
	case "header":
		srv.ReadHeaderTimeout = 10 * time.Second
	case "idle":
		srv.IdleTimeout = 120 * time.Second
	case "both":
		srv.ReadHeaderTimeout, srv.IdleTimeout = 10*time.Second, 120*time.Second
	default:
		return fmt.Errorf("-timeouts: %q is not header, idle or both", *timeouts)
	}
	keep = makeBallast(*ballast)
	if *answer == "" {
		return srv.ListenAndServe()
	}
	data, err := os.ReadFile(*answer)
	if err != nil {
		return err
	}
	h, err := parseAnswer(string(data))
	if err != nil {
		return err
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A fresh map per answer, as a handler that builds its answer has.
		wh := w.Header()
		for k, v := range h {
			wh[k] = v
		}
		w.WriteHeader(http.StatusOK)
	})
	return srv.ListenAndServe()
}

// keep holds the ballast alive.
var keep []*[8]*int

// makeBallast allocates about mib MiB of small objects that point to each
// other, the kind of live heap the collector has to trace.
func makeBallast(mib int) []*[8]*int {
	n := mib << 20 / 64
	b := make([]*[8]*int, n)
	for i := range b {
		b[i] = new([8]*int)
		if i > 0 {
			b[i][0] = b[i-1][1]
		}
		b[i][1] = new(int)
	}
	return b
}

// parseAnswer reads captured header lines; a status line, Date and
// Content-Length (which net/http writes itself) and blank lines are skipped.
func parseAnswer(s string) (http.Header, error) {
	h := http.Header{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || strings.HasPrefix(line, "HTTP/") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("not a header line: %q", line)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
			// net/http would drop or refuse to write it: the answer
			// served would not be the one captured.
			return nil, fmt.Errorf("not a valid header field: %q", line)
		}
		name = http.CanonicalHeaderKey(name)
		if name == "Date" || name == "Content-Length" {
			continue
		}
		h[name] = append(h[name], value)
	}
	return h, nil
}

func allowEveryone(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Keygate-Org", "bench")
	w.WriteHeader(http.StatusOK)
}

// Command keygate-bench measures keygate side by side with what it is
// compared to: the upstream alone, a bare httputil.ReverseProxy, and nginx
// doing the same job (token check, rate limit, keepalive proxy), and
// keygate's forward-auth behind nginx beside the two ceilings of any
// forward-auth there (nginx answering its own auth subrequest, and a bare
// Go handler answering it). It builds keygate, starts every server on this
// machine, runs wrk against each in interleaved rounds and prints one table.
//
//	go run ./cmd/keygate-bench run            # what the README's table comes from
//	go run ./cmd/keygate-bench upstream -listen 127.0.0.1:19100
//	go run ./cmd/keygate-bench proxy -listen 127.0.0.1:19101 -upstream http://127.0.0.1:19100
//	go run ./cmd/keygate-bench auth -listen 127.0.0.1:19109
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
	"time"
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
// give: 200 with the headers keygate's answer carries, for every request.
// Behind nginx's auth_request it shows what the subrequest costs before
// keygate checks anything.
func authCommand(args []string) error {
	fs := flag.NewFlagSet("auth", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:19109", "address to listen on")
	fs.Parse(args)
	return http.ListenAndServe(*listen, http.HandlerFunc(allowEveryone))
}

func allowEveryone(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Keygate-Org", "bench")
	w.WriteHeader(http.StatusOK)
}

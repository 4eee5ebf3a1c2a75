package main

import (
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
)

// FuzzParseAnswer holds the captured-answer reader to what the auth
// command serves: every field it accepts is one net/http writes as read,
// never Date or Content-Length, and a header it returns, written out as
// net/http writes it, reads back the same.
func FuzzParseAnswer(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nX-Keygate-Identity: a.b.c\r\nDate: Tue, 01 Dec 2026 02:23:41 GMT\r\nContent-Length: 0\r\n\r\n")
	f.Add("x-ratelimit-limit: 10\nx-ratelimit-limit: 11\n")
	f.Add("Bad Name: v\r\n")
	f.Add("X-A: a\rb\r\n")
	f.Add("no colon here\n")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseAnswer(s)
		if err != nil {
			return
		}
		for name, values := range h {
			if !httpguts.ValidHeaderFieldName(name) || name != http.CanonicalHeaderKey(name) {
				t.Fatalf("name %q: not a canonical field name", name)
			}
			if name == "Date" || name == "Content-Length" {
				t.Fatalf("%s kept: net/http writes it itself", name)
			}
			for _, v := range values {
				if !httpguts.ValidHeaderFieldValue(v) || v != strings.TrimSpace(v) {
					t.Fatalf("%s: value %q is not a trimmed field value", name, v)
				}
			}
		}
		var b strings.Builder
		if err := h.Write(&b); err != nil {
			t.Fatal(err)
		}
		again, err := parseAnswer(b.String())
		if err != nil {
			t.Fatalf("written back %q: %v", b.String(), err)
		}
		if len(h) > 0 && !reflect.DeepEqual(again, h) {
			t.Fatalf("read %v, written and read again %v", h, again)
		}
	})
}

// FuzzParseWrk holds the wrk output reader to figures a table can use:
// a rate that is a finite number, a latency from zero to an hour, and an
// error count that is not negative, or an error.
func FuzzParseWrk(f *testing.F) {
	f.Add(wrkSample)
	f.Add("Requests/sec: 1.2.3\n")
	f.Add("Requests/sec: 5\n     99%  99999999999999999999s\n")
	f.Add("Requests/sec: 5\nNon-2xx or 3xx responses: 99999999999999999999\n")
	f.Add("Requests/sec: 1" + strings.Repeat("0", 400) + "\n")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseWrk(s)
		if err != nil {
			return
		}
		if math.IsNaN(r.rps) || math.IsInf(r.rps, 0) || r.rps < 0 {
			t.Fatalf("rate %v", r.rps)
		}
		if r.p99 < 0 || r.p99 > time.Hour {
			t.Fatalf("p99 %v", r.p99)
		}
		if r.errors < 0 {
			t.Fatalf("errors %d", r.errors)
		}
	})
}

// wrkSample is wrk 4.1's output for a run with latency and errors.
const wrkSample = `Running 5s test @ http://127.0.0.1:19102/v2/products
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.91ms    1.20ms  30.12ms   88.10%
    Req/Sec    11.12k     1.01k   12.90k    70.00%
  Latency Distribution
     50%    2.71ms
     75%    3.20ms
     90%    4.01ms
     99%    8.65ms
  55612 requests in 5.00s, 20.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:  11121.40
Transfer/sec:      4.02MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	if r.rps != 11121.40 || r.p99 != 8650*time.Microsecond || r.errors != 6 {
		t.Errorf("got %+v, want 11121.40 req/s, p99 8.65ms, 6 errors", r)
	}
	for _, bad := range []string{"Requests/sec: 1.2.3\n", "Requests/sec: 5\n     99%  9999999s\n", "Requests/sec: 5\nNon-2xx or 3xx responses: 99999999999999999999\n", "no rate\n"} {
		if _, err := parseWrk(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseAnswerRefusesFieldsNetHTTPWouldNotWrite(t *testing.T) {
	for _, bad := range []string{"Bad Name: v\n", "X-A: a\rb\n", "X-A: a\x00b\n", ": empty name\n"} {
		if _, err := parseAnswer(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

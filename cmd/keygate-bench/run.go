package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Ports the harness listens on; all on 127.0.0.1.
const (
	portUpstream        = 19100
	portBareProxy       = 19101
	portKeygate         = 19102
	portKeygateRedis    = 19103
	portNginx           = 19104
	portNginxAuth       = 19105
	portAdmin           = 19190
	portAdminRedis      = 19191
	portKeygateBaseline = 19106
	portNginxAuthNginx  = 19107
	portNginxAuthGo     = 19108
	portGoAuth          = 19109
	portNginxAuthReplay = 19110
	portGoAuthReplay    = 19111
	portAdminBaseline   = 19192
	benchPath           = "/v2/products?page=1"
	benchTokenLimit     = 1_000_000_000 // per minute: computed on every request, never reached
	nginxRatePerMin     = 1_000_000_000
	readinessDeadline   = 30 * time.Second
)

// target is one thing wrk measures.
type target struct {
	name string
	url  string
	// token: whether the request carries the API token.
	token bool
}

type options struct {
	rounds      int
	duration    time.Duration
	connections int
	redisURL    string
	dir         string
	baseline    string
}

func runCommand(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var o options
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; each measures every target once (0: set up and warm up only; with -dir the configs stay)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "wrk duration per target and round")
	fs.IntVar(&o.connections, "connections", 32, "wrk connections (one wrk thread)")
	fs.StringVar(&o.redisURL, "redis", "redis://127.0.0.1:6379/0", "Redis for keygate's Redis limiter; empty skips it")
	fs.StringVar(&o.dir, "dir", "", "work directory (default: a temporary one, removed afterwards)")
	fs.StringVar(&o.baseline, "baseline", "", "another keygate binary to measure beside this one (e.g. one built from main), memory limiter")
	fs.Parse(args)

	for _, tool := range []string{"nginx", "wrk", "go"} {
		if _, err := lookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (bench/run.sh installs nginx and wrk with apt-get)", tool)
		}
	}
	if o.dir == "" {
		dir, err := os.MkdirTemp("", "keygate-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.dir = dir
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	procs := &processes{dir: o.dir}
	defer procs.stopAll()

	fmt.Fprintln(os.Stderr, "building keygate…")
	keygateBin := filepath.Join(o.dir, "keygate")
	if out, err := exec.Command("go", "build", "-o", keygateBin, "./cmd/keygate").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/keygate (run from the repository root): %v\n%s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	token, err := setUpKeygate(keygateBin, o)
	if err != nil {
		return err
	}
	targets := []target{
		{"upstream direct", targetURL(portUpstream), false},
		{"bare httputil.ReverseProxy", targetURL(portBareProxy), false},
		{"nginx: token map + limit_req + keepalive proxy", targetURL(portNginx), true},
		{"keygate proxy, memory limiter", targetURL(portKeygate), true},
	}
	if o.redisURL != "" {
		targets = append(targets, target{"keygate proxy, Redis limiter", targetURL(portKeygateRedis), true})
	}
	if o.baseline != "" {
		targets = append(targets, target{"baseline keygate proxy, memory limiter", targetURL(portKeygateBaseline), true})
	}
	targets = append(targets,
		target{"nginx auth_request → keygate /_keygate/auth", targetURL(portNginxAuth), true},
		// The two ceilings for the row above: nginx's subrequest when the
		// answer costs nothing, and when a Go net/http server gives it.
		target{"nginx auth_request → nginx return 200 (the cheapest auth answer)", targetURL(portNginxAuthNginx), true},
		target{"nginx auth_request → bare Go net/http handler", targetURL(portNginxAuthGo), true},
		// The same handler answering with a copy of keygate's own answer:
		// what the identity and rate limit headers cost nginx and the
		// upstream, with keygate's check taken out.
		target{"nginx auth_request → bare Go handler, keygate's answer copied", targetURL(portNginxAuthReplay), true},
	)

	procs.start(ctx, self, "upstream", "-listen", addr(portUpstream))
	procs.start(ctx, self, "proxy", "-listen", addr(portBareProxy), "-upstream", "http://"+addr(portUpstream))
	procs.start(ctx, self, "auth", "-listen", addr(portGoAuth))
	procs.start(ctx, keygateBin, "serve", "--config", filepath.Join(o.dir, "memory.yaml"))
	if o.redisURL != "" {
		procs.start(ctx, keygateBin, "serve", "--config", filepath.Join(o.dir, "redis.yaml"))
	}
	if o.baseline != "" {
		procs.start(ctx, o.baseline, "serve", "--config", filepath.Join(o.dir, "baseline.yaml"))
	}
	// The replaying handler needs keygate's answer, so keygate first.
	if err := waitReady(target{"keygate", targetURL(portKeygate), true}, token); err != nil {
		return err
	}
	answer, err := captureAnswer(o.dir, token)
	if err != nil {
		return err
	}
	procs.start(ctx, self, "auth", "-listen", addr(portGoAuthReplay), "-answer", answer)
	nginxConf, err := writeNginxConfig(o.dir, token)
	if err != nil {
		return err
	}
	procs.start(ctx, "nginx", "-p", o.dir, "-c", nginxConf, "-g", "daemon off; pid "+filepath.Join(o.dir, "nginx.pid")+";")

	for _, t := range targets {
		if err := waitReady(t, token); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "warming up, then %d rounds of %s per target…\n", o.rounds, o.duration)
	for _, t := range targets {
		if _, err := runWrk(t, token, 2*time.Second, o.connections); err != nil {
			return err
		}
	}
	results := map[string][]wrkResult{}
	for round := 1; round <= o.rounds; round++ {
		for _, t := range targets {
			res, err := runWrk(t, token, o.duration, o.connections)
			if err != nil {
				return err
			}
			results[t.name] = append(results[t.name], res)
			fmt.Fprintf(os.Stderr, "round %d  %-64s %8.0f req/s  p99 %s\n", round, t.name, res.rps, res.p99)
		}
	}
	if o.rounds < 1 {
		// -rounds 0: the servers were set up and warmed; with -dir their
		// configs stay for measuring by hand.
		fmt.Fprintln(os.Stderr, "no rounds: nothing measured")
		return nil
	}
	printTable(os.Stdout, targets, results, o)
	return nil
}

// captureAnswer asks keygate's /_keygate/auth as nginx would and writes
// the answer's header lines to a file for the auth command's -answer.
func captureAnswer(dir, token string) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr(portKeygate)+"/_keygate/auth", nil)
	req.Header.Set("X-Token", token)
	req.Header.Set("X-Original-URI", benchPath)
	req.Header.Set("X-Original-Method", http.MethodGet)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("keygate's forward-auth answered %s", resp.Status)
	}
	var b strings.Builder
	if err := resp.Header.Write(&b); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "keygate-answer.txt")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

func addr(port int) string      { return "127.0.0.1:" + strconv.Itoa(port) }
func targetURL(port int) string { return "http://" + addr(port) + benchPath }

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	// Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", exec.ErrNotFound
}

// setUpKeygate writes keygate's two configs (memory and Redis limiter),
// creates an organization and a token, and returns the token.
func setUpKeygate(bin string, o options) (string, error) {
	dataDir := filepath.Join(o.dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	for _, c := range []struct {
		file, limiter string
		listen, admin int
	}{
		{"memory.yaml", "backend: memory", portKeygate, portAdmin},
		{"redis.yaml", "backend: redis\n  redis_url: " + o.redisURL, portKeygateRedis, portAdminRedis},
		{"baseline.yaml", "backend: memory", portKeygateBaseline, portAdminBaseline},
	} {
		if err := os.WriteFile(filepath.Join(o.dir, c.file), []byte(keygateConfig(dataDir, c.limiter, c.listen, c.admin)), 0o600); err != nil {
			return "", err
		}
	}
	cfg := filepath.Join(o.dir, "memory.yaml")
	if out, err := exec.Command(bin, "orgs", "create", "--config", cfg, "--slug", "bench").CombinedOutput(); err != nil {
		return "", fmt.Errorf("keygate orgs create: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "tokens", "create", "--config", cfg, "--org", "bench", "--api", "bench", "--name", "bench", "--expires", "never").Output()
	if err != nil {
		return "", fmt.Errorf("keygate tokens create: %v", err)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if len(lines) == 0 {
		return "", errors.New("keygate tokens create printed no token")
	}
	return lines[len(lines)-1], nil
}

// keygateConfig is a cannmenus-style API with one token route, a per-token
// limit that is checked on every request and never reached, and the
// identity header on (keygate always signs one).
func keygateConfig(dataDir, limiter string, listen, admin int) string {
	return fmt.Sprintf(`data_dir: %s
admin:
  listen: %s
rate_limiter:
  %s
log:
  level: warn
apis:
  - name: bench
    preset: cannmenus
    listen: %s
    upstream: http://%s
    token_prefix: bn_
    scopes: [products:read]
    allow_never_expiry: true
    max_active_tokens: 10
    rate_limits:
      public: none
      token: {limit: %d, period: 1m}
    routes:
      - methods: [GET]
        path: /v2/products
        scopes: [products:read]
`, dataDir, addr(admin), limiter, addr(listen), addr(portUpstream), benchTokenLimit)
}

// writeNginxConfig is nginx doing keygate's job as closely as nginx can:
// the token looked up in a map (404 when unknown), a limit_req per token,
// and a keepalive pool to the upstream; and, on four more ports, nginx
// asking for a forward-auth answer before proxying: from keygate's
// /_keygate/auth, from nginx itself, from a bare Go handler, and from the
// same handler answering with keygate's headers.
func writeNginxConfig(dir, token string) (string, error) {
	var conf strings.Builder
	fmt.Fprintf(&conf, `worker_processes auto;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp;
  proxy_temp_path %[1]s/tmp;
  fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp;
  scgi_temp_path %[1]s/tmp;
  map $http_x_token $token_org {
    default "";
    "%[2]s" "bench";
  }
  limit_req_zone $http_x_token zone=per_token:10m rate=%[3]dr/m;
  upstream api {
    server %[4]s;
    keepalive 64;
  }
  upstream keygate {
    server %[5]s;
    keepalive 64;
  }
  upstream go_auth {
    server %[6]s;
    keepalive 64;
  }
  upstream go_auth_replay {
    server %[8]s;
    keepalive 64;
  }
  server {
    listen %[7]s;
    location / {
      if ($token_org = "") { return 404 '{"detail": "Not Found"}'; }
      limit_req zone=per_token burst=1000000 nodelay;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Token "";
      proxy_set_header X-Keygate-Org $token_org;
      proxy_pass http://api;
    }
  }
`, dir, token, nginxRatePerMin, addr(portUpstream), addr(portKeygate), addr(portGoAuth), addr(portNginx), addr(portGoAuthReplay))
	for _, s := range []struct {
		listen int
		answer string
	}{
		{portNginxAuth, authProxy("keygate")},
		// nginx applies no add_header to a subrequest, so this one's
		// upstream gets no X-Keygate-Org: a header less to proxy.
		{portNginxAuthNginx, "      add_header X-Keygate-Org bench;\n      return 200;\n"},
		{portNginxAuthGo, authProxy("go_auth")},
		{portNginxAuthReplay, authProxy("go_auth_replay")},
	} {
		conf.WriteString(authRequestServer(s.listen, s.answer))
	}
	conf.WriteString("}\n")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "nginx.conf")
	return path, os.WriteFile(path, []byte(conf.String()), 0o600)
}

// authRequestServer is one nginx forward-auth server block: every request
// first goes to the internal /_keygate/auth location, whose body (answer)
// says who decides, then to the upstream with the identity headers that
// answer set. The forward-auth targets differ only in answer, so their
// ratios to each other are the price of who answers.
func authRequestServer(listen int, answer string) string {
	return fmt.Sprintf(`  server {
    listen %s;
    location / {
      auth_request /_keygate/auth;
      auth_request_set $keygate_org $upstream_http_x_keygate_org;
      auth_request_set $keygate_identity $upstream_http_x_keygate_identity;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Token "";
      proxy_set_header X-Keygate-Org $keygate_org;
      proxy_set_header X-Keygate-Identity $keygate_identity;
      proxy_pass http://api;
    }
    location = /_keygate/auth {
      internal;
%s    }
  }
`, addr(listen), answer)
}

// authProxy is an auth location's body that asks the named nginx upstream,
// as keygate's docs tell nginx to ask keygate.
func authProxy(upstream string) string {
	return `      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_pass http://` + upstream + ";\n"
}

// processes are the servers the harness started; stopAll ends them.
// Their output goes to one log file each in the work directory.
type processes struct {
	dir  string
	cmds []*exec.Cmd
}

func (p *processes) start(ctx context.Context, name string, args ...string) {
	if path, err := lookPath(name); err == nil {
		name = path
	}
	cmd := exec.CommandContext(ctx, name, args...)
	log, err := os.Create(filepath.Join(p.dir, fmt.Sprintf("%d-%s.log", len(p.cmds), filepath.Base(name))))
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting %s: %v\n", name, err)
		return
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "starting %s: %v\n", name, err)
		return
	}
	p.cmds = append(p.cmds, cmd)
}

func (p *processes) stopAll() {
	for _, cmd := range slices.Backward(p.cmds) {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

// waitReady polls t until it answers 200.
func waitReady(t target, token string) error {
	deadline := time.Now().Add(readinessDeadline)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, t.url, nil)
		if t.token {
			req.Header.Set("X-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			var opErr *net.OpError
			if !errors.As(err, &opErr) {
				last = err.Error()
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s at %s not ready after %s (last answer: %s)", t.name, t.url, readinessDeadline, last)
}

type wrkResult struct {
	rps float64
	p99 time.Duration
	// errors counts non-2xx answers and socket errors: a run with errors
	// measured something else.
	errors int
}

var (
	rpsLine    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	p99Line    = regexp.MustCompile(`(?m)^\s+99%\s+([0-9.]+)(us|ms|s)\b`)
	non2xxLine = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	socketLine = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func runWrk(t target, token string, d time.Duration, connections int) (wrkResult, error) {
	args := []string{"-t1", "-c" + strconv.Itoa(connections), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency"}
	if t.token {
		args = append(args, "-H", "X-Token: "+token)
	}
	out, err := exec.Command("wrk", append(args, t.url)...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v\n%s", t.url, err, out)
	}
	return parseWrk(string(out))
}

func parseWrk(out string) (wrkResult, error) {
	var res wrkResult
	m := rpsLine.FindStringSubmatch(out)
	if m == nil {
		return res, fmt.Errorf("no Requests/sec in wrk output:\n%s", out)
	}
	rps, err := strconv.ParseFloat(m[1], 64)
	if err != nil || math.IsInf(rps, 0) {
		return res, fmt.Errorf("wrk's Requests/sec %q is not a number", m[1])
	}
	res.rps = rps
	if m := p99Line.FindStringSubmatch(out); m != nil {
		v, err := strconv.ParseFloat(m[1], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
		// Past an hour a wrk run of seconds cannot have measured it, and
		// past about 292 years a Duration would wrap.
		if err != nil || v*float64(unit) > float64(time.Hour) {
			return res, fmt.Errorf("wrk's 99%% latency %q%s is not a latency", m[1], m[2])
		}
		res.p99 = time.Duration(v * float64(unit))
	}
	counts := []string{}
	if m := non2xxLine.FindStringSubmatch(out); m != nil {
		counts = append(counts, m[1])
	}
	if m := socketLine.FindStringSubmatch(out); m != nil {
		counts = append(counts, m[1:]...)
	}
	for _, s := range counts {
		n, err := strconv.Atoi(s)
		if err != nil || n > math.MaxInt32 {
			return res, fmt.Errorf("wrk's error count %q is not a count", s)
		}
		res.errors += n
	}
	return res, nil
}

// printTable prints, per target, the median req/s over the rounds and its
// range, the median of each round's ratio to the bare proxy and to nginx
// (ratios within one round share the machine's load), and the median p99.
func printTable(out *os.File, targets []target, results map[string][]wrkResult, o options) {
	bare := results[targets[1].name]
	nginx := results[targets[2].name]
	host, _ := os.Hostname()
	fmt.Fprintf(out, "\n%d rounds × %s, wrk -t1 -c%d, %s, %d CPUs (GOMAXPROCS %d), %s\n\n",
		o.rounds, o.duration, o.connections, host, runtime.NumCPU(), runtime.GOMAXPROCS(0), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintln(out, "| target | req/s (median) | range | × bare proxy | × nginx | p99 | p99 over bare proxy | errors |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|")
	for _, t := range targets {
		rs := results[t.name]
		var rps, vsBare, vsNginx, p99, p99Over []float64
		errs := 0
		for i, r := range rs {
			rps = append(rps, r.rps)
			vsBare = append(vsBare, r.rps/bare[i].rps)
			vsNginx = append(vsNginx, r.rps/nginx[i].rps)
			p99 = append(p99, float64(r.p99))
			p99Over = append(p99Over, float64(r.p99-bare[i].p99))
			errs += r.errors
		}
		fmt.Fprintf(out, "| %s | %.1fk | %.1f–%.1fk | %.2f | %.2f | %s | %s | %d |\n", t.name,
			median(rps)/1000, slices.Min(rps)/1000, slices.Max(rps)/1000, median(vsBare), median(vsNginx),
			roundDuration(median(p99)), roundDuration(median(p99Over)), errs)
	}
	fmt.Fprintln(out, "\nRatios are medians of per-round ratios: each round measures every target back to back.")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func roundDuration(ns float64) string {
	d := time.Duration(ns)
	if d < 0 {
		return "−" + (-d).Round(10*time.Microsecond).String()
	}
	return d.Round(10 * time.Microsecond).String()
}

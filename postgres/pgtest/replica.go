package pgtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Replicated is a PostgreSQL primary and one streaming replica (a hot
// standby made with pg_basebackup) that a test started for itself, so it
// can pause, lag and stop the replica without touching the shared server.
type Replicated struct {
	PrimaryURL string
	ReplicaURL string

	t       testing.TB
	bin     string
	owner   string // the OS user the servers run as ("" = this process's)
	replica string // the replica's data directory
}

// StartReplicated starts a fresh primary and a streaming replica of it on
// free ports, with the PostgreSQL server binaries installed on this machine
// (Debian's postgresql package), and stops both when the test ends. It
// skips when the binaries are missing, except under CI, where it fails.
func StartReplicated(t testing.TB) *Replicated {
	t.Helper()
	began := time.Now()
	bin := serverBinaries(t)
	r := &Replicated{t: t, bin: bin}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		r.owner = "postgres"
	}
	dir, err := os.MkdirTemp("", "keygate-pg-replicated-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r.chown(dir)
	primary := filepath.Join(dir, "primary")
	r.replica = filepath.Join(dir, "replica")
	r.run("initdb", "-D", primary, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
	primaryPort := freePort(t)
	r.start(primary, primaryPort)
	replicaPort := freePort(t)
	r.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primaryPort), "-U", "postgres",
		"-D", r.replica, "-R", "-X", "stream", "--no-sync", "--checkpoint=fast")
	r.start(r.replica, replicaPort)

	r.PrimaryURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", primaryPort)
	r.ReplicaURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", replicaPort)
	t.Logf("primary and streaming replica started in %s", time.Since(began).Round(time.Millisecond))
	return r
}

// PauseReplay stops the replica from applying what the primary sends, so it
// falls behind; ResumeReplay lets it catch up.
func (r *Replicated) PauseReplay() { r.onReplica(`SELECT pg_wal_replay_pause()`) }

// ResumeReplay lets a paused replica catch up.
func (r *Replicated) ResumeReplay() { r.onReplica(`SELECT pg_wal_replay_resume()`) }

// StopReplica shuts the replica down at once.
func (r *Replicated) StopReplica() {
	r.run("pg_ctl", "-D", r.replica, "-m", "immediate", "-w", "stop")
}

// WaitCaughtUp waits until the replica has replayed everything the primary
// has written so far.
func (r *Replicated) WaitCaughtUp() {
	r.t.Helper()
	var target string
	r.query(r.PrimaryURL, `SELECT pg_current_wal_lsn()::text`, &target)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var done bool
		r.query(r.ReplicaURL, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, &done, target)
		if done {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the replica did not replay up to %s in 20s", target)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *Replicated) onReplica(sql string) {
	r.t.Helper()
	var ignored any
	r.query(r.ReplicaURL, sql, &ignored)
}

func (r *Replicated) query(url, sql string, dest any, args ...any) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		r.t.Fatalf("connecting: %v", err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql, args...).Scan(dest); err != nil {
		r.t.Fatalf("%s: %v", sql, err)
	}
}

// start starts a server on dataDir, listening on 127.0.0.1:port with its
// socket in its own directory, and stops it when the test ends.
func (r *Replicated) start(dataDir string, port int) {
	r.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c max_connections=40",
		port, dataDir)
	r.run("pg_ctl", "-D", dataDir, "-o", opts, "-l", filepath.Join(dataDir, "server.log"), "-w", "-t", "30", "start")
	r.t.Cleanup(func() {
		// Already stopped servers make pg_ctl fail; that is fine here.
		argv := r.command("pg_ctl", "-D", dataDir, "-m", "immediate", "-w", "stop")
		exec.Command(argv[0], argv[1:]...).Run()
	})
}

// run runs one of the server binaries as the servers' owner.
func (r *Replicated) run(name string, args ...string) {
	r.t.Helper()
	argv := r.command(name, args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

func (r *Replicated) command(name string, args ...string) []string {
	argv := append([]string{filepath.Join(r.bin, name)}, args...)
	if r.owner != "" {
		argv = append([]string{"runuser", "-u", r.owner, "--"}, argv...)
	}
	return argv
}

func (r *Replicated) chown(path string) {
	r.t.Helper()
	if r.owner == "" {
		return
	}
	u, err := user.Lookup(r.owner)
	if err != nil {
		r.t.Fatalf("PostgreSQL cannot run as root and there is no %q user: %v", r.owner, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		r.t.Fatal(err)
	}
}

// serverBinaries finds the directory of initdb, pg_ctl and pg_basebackup.
func serverBinaries(t testing.TB) string {
	t.Helper()
	var dirs []string
	if path, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(path))
	}
	installed, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	dirs = append(dirs, installed...) // Debian's, newest last
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_basebackup")); err == nil {
			return dirs[i]
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) are not installed; CI must run the replica tests")
	}
	t.Skip("the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) are not installed")
	return ""
}

// freePort returns a port below the ephemeral range that nothing listens
// on now, for servers that must be told their port.
func freePort(t testing.TB) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port found")
	return 0
}

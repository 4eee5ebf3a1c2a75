package redislimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Deployment modes of Redis that Connect knows.
const (
	ModeSingle   = "single"   // one server (with its own replicas behind a proxy, if any)
	ModeCluster  = "cluster"  // Redis Cluster: keys spread over masters by slot
	ModeSentinel = "sentinel" // a master found through Redis Sentinel, followed on failover
)

// Connection says how to reach the Redis that limits are shared in.
type Connection struct {
	// URL is a redis://, rediss:// or unix:// URL. In single mode it is the
	// server; in cluster and sentinel mode it gives the credentials, the
	// database (sentinel only) and TLS (rediss://), and its host is a seed
	// address when Addrs is empty.
	URL string
	// Mode is ModeSingle (""), ModeCluster or ModeSentinel.
	Mode string
	// Addrs are cluster seed nodes or sentinel addresses (host:port).
	Addrs []string
	// MasterName is the master's name in sentinel mode.
	MasterName string
	// Timeout bounds one read or write (0: 250 ms); dialing may take
	// twice as long.
	Timeout time.Duration
}

// Timeouts for every Redis call on the request path: a rate-limit decision
// that cannot be made in this time is a failure for ratelimit.Fallback to
// handle, not a request left waiting.
const (
	defaultTimeout = 250 * time.Millisecond
	// clusterStateReload is how old the cluster's slot map may get: one
	// CLUSTER SLOTS per instance this often, at most.
	clusterStateReload = time.Second
)

// Connect returns a client for c. Retries are off: ratelimit.Fallback
// decides at once what a failure means. In cluster mode MOVED and ASK
// redirections are still followed (a slot that moved, or a failover, is not
// a failure), and every decision touches one key, hence one slot.
func Connect(c Connection) (redis.UniversalClient, error) {
	quietRedisLog.Do(func() { redis.SetLogger(debugLogger{}) })
	parsed, err := redis.ParseURL(c.URL)
	if err != nil {
		// The parser's message may quote the URL, password included.
		return nil, errors.New("redislimit: the Redis URL cannot be parsed")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	addrs := c.Addrs
	if len(addrs) == 0 {
		addrs = []string{parsed.Addr}
	}
	opts := &redis.UniversalOptions{
		Addrs:     addrs,
		Protocol:  parsed.Protocol,
		Username:  parsed.Username,
		Password:  parsed.Password,
		DB:        parsed.DB,
		TLSConfig: parsed.TLSConfig,

		DialTimeout:  2 * timeout,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
		// -1 turns retries off in go-redis (0 means its default of 3).
		MaxRetries:    -1,
		DialerRetries: 1,
	}
	switch c.Mode {
	case "", ModeSingle:
		simple := opts.Simple()
		simple.Addr, simple.Network = parsed.Addr, parsed.Network
		return redis.NewClient(simple), nil
	case ModeCluster:
		if opts.DB != 0 {
			return nil, errors.New("redislimit: Redis Cluster has only database 0; drop the database from the URL")
		}
		cluster := opts.Cluster()
		// A dead master's slots move to its replica, but go-redis only
		// learns of it from a MOVED reply or when its slot map is older
		// than this; a dead node sends no MOVED, and the default (60 s)
		// would leave decisions failing for a minute after a failover.
		cluster.ClusterStateReloadInterval = clusterStateReload
		return redis.NewClusterClient(cluster), nil
	case ModeSentinel:
		if c.MasterName == "" {
			return nil, errors.New("redislimit: sentinel mode needs the master's name")
		}
		opts.MasterName = c.MasterName
		return redis.NewFailoverClient(opts.Failover()), nil
	}
	return nil, fmt.Errorf("redislimit: unknown Redis mode %q", c.Mode)
}

// quietRedisLog sends go-redis's own log lines (a failed dial per request
// during an outage) to slog at debug level: ratelimit.Fallback already logs
// an outage once when it starts and once when it ends.
var quietRedisLog sync.Once

type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

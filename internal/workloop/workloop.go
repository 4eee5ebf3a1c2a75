// Package workloop runs the workers that drain one of keygate's durable
// queues in the store (webhook deliveries, emails): a worker claims one due
// item, handles it and claims again; when nothing is due it waits for a
// wake-up from this process or for the poll interval.
//
// An idle process claims at most once per poll interval per queue,
// whatever the number of workers: one idle worker polls while the others
// wait to be woken, and a worker that finds an item wakes another, so a
// backlog, including one another instance queued, is soon drained by every
// worker at once.
//
// The package never logs an item: describing one is the caller's business.
package workloop

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes a queue and how to drain it.
type Config[T any] struct {
	// Name says what is claimed, for the log: "webhook deliveries".
	Name string
	// Claim claims up to limit due items; none when nothing is due.
	Claim func(ctx context.Context, limit int) ([]T, error)
	// Handle makes one attempt at a claimed item. Its context does not end
	// with Run's, so an attempt in flight when claiming stops finishes and
	// is recorded; it ends when Shutdown's grace does. Handle bounds
	// itself otherwise (by the claim's lease).
	Handle func(ctx context.Context, item T)
	// Workers is how many items are handled at once (at least 1).
	Workers int
	// PollInterval is how often an idle process looks for items queued
	// elsewhere: by another instance, or due for a retry (1 s when 0).
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Loop is a queue's workers. Wake, Run and Shutdown may be called from any
// goroutine.
type Loop[T any] struct {
	cfg Config[T]
	// wake holds one wake-up for the next idle worker, so a wake-up sent
	// while every worker is busy is not lost.
	wake chan struct{}
	// poller holds the right to poll: the idle worker that takes it waits
	// for the poll interval as well as for a wake-up.
	poller chan struct{}
	// claimFailing is true while the last claim failed; see noteClaim.
	claimFailing atomic.Bool

	mu       sync.Mutex
	shutDown bool
	runs     sync.WaitGroup
	// shutdownBegun ends when Shutdown is called: workers stop claiming.
	// graceEnded ends when Shutdown's context does: attempts are cut short.
	shutdownBegun, graceEnded context.Context
	beginShutdown, endGrace   context.CancelFunc
}

// New returns the workers of a queue; Run starts them.
func New[T any](cfg Config[T]) *Loop[T] {
	cfg.Workers = max(cfg.Workers, 1)
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second // a zero interval would poll without pause
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Loop[T]{cfg: cfg, wake: make(chan struct{}, 1), poller: make(chan struct{}, 1)}
	l.poller <- struct{}{}
	l.shutdownBegun, l.beginShutdown = context.WithCancel(context.Background())
	l.graceEnded, l.endGrace = context.WithCancel(context.Background())
	return l
}

// Wake has an idle worker claim at once: an item was queued in this
// process.
func (l *Loop[T]) Wake() {
	select {
	case l.wake <- struct{}{}:
	default: // a wake-up is already waiting
	}
}

// Run claims and handles due items with Config.Workers workers until ctx
// ends or Shutdown is called. Attempts in flight then finish (within their
// own bounds, or Shutdown's grace) before Run returns. After Shutdown, Run
// returns at once.
func (l *Loop[T]) Run(ctx context.Context) {
	if !l.startRun() {
		return
	}
	defer l.runs.Done()
	claimCtx, stopClaiming := context.WithCancel(ctx)
	defer stopClaiming()
	defer context.AfterFunc(l.shutdownBegun, stopClaiming)()
	// Attempts outlive ctx, so that one in flight is finished and
	// recorded rather than abandoned, but not Shutdown's grace.
	attemptCtx, cutAttempts := context.WithCancel(context.WithoutCancel(ctx))
	defer cutAttempts()
	defer context.AfterFunc(l.graceEnded, cutAttempts)()
	var wg sync.WaitGroup
	for range l.cfg.Workers {
		wg.Go(func() { l.work(claimCtx, attemptCtx) })
	}
	wg.Wait()
}

func (l *Loop[T]) startRun() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shutDown {
		return false
	}
	l.runs.Add(1)
	return true
}

// Shutdown stops every Run's workers claiming and waits for the attempts
// in flight until ctx ends; it then cancels them and waits for them to
// return. An item whose attempt was cut short stays claimed until its
// lease ends and is tried again then, here or by another instance. The
// error is ctx's when attempts were cut short.
func (l *Loop[T]) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.shutDown = true
	l.mu.Unlock()
	l.beginShutdown()
	stopped := make(chan struct{})
	go func() {
		l.runs.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
	}
	l.endGrace()
	<-stopped
	return ctx.Err()
}

// work is one worker: claim one due item, handle it, repeat; when none is
// due, wait until woken or, if this worker polls, the poll interval ends.
func (l *Loop[T]) work(ctx, attemptCtx context.Context) {
	for ctx.Err() == nil {
		claimed, err := l.cfg.Claim(ctx, 1)
		if ctx.Err() == nil {
			l.noteClaim(err)
		}
		if len(claimed) == 0 {
			l.idle(ctx)
			continue
		}
		// There may be more: another worker looks, and when it finds one
		// it wakes the next, so a backlog has every worker on it.
		l.Wake()
		for _, item := range claimed {
			l.cfg.Handle(attemptCtx, item)
		}
	}
}

// idle waits for a wake-up or for ctx to end; the one idle worker that
// takes the right to poll waits for the poll interval too. The others
// cost nothing while nothing happens.
func (l *Loop[T]) idle(ctx context.Context) {
	select {
	case <-l.poller:
		defer func() { l.poller <- struct{}{} }()
	default:
		select {
		case <-ctx.Done():
		case <-l.wake:
		}
		return
	}
	timer := time.NewTimer(l.cfg.PollInterval)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-l.wake:
	case <-timer.C:
	}
}

// noteClaim logs once when claiming starts failing (the database is down)
// and once when it works again, not once per worker and poll.
func (l *Loop[T]) noteClaim(err error) {
	if err != nil && !l.claimFailing.Swap(true) {
		l.cfg.Logger.Error("claiming "+l.cfg.Name+" failed; they wait until the store answers", "error", err)
	} else if err == nil && l.claimFailing.Swap(false) {
		l.cfg.Logger.Info("claiming " + l.cfg.Name + " works again")
	}
}

// Package detach gives work that must finish once begun (recording what a
// request already did) a context that outlives its caller's cancellation
// but not its deadline.
package detach

import "context"

// Context returns ctx's values and deadline without its cancellation: the
// work survives a client that leaves, yet a database that stops answering
// holds it no longer than the request it serves was given. Without a
// deadline on ctx (the CLI, background work) nothing bounds it.
func Context(ctx context.Context) (context.Context, context.CancelFunc) {
	detached := context.WithoutCancel(ctx)
	if deadline, ok := ctx.Deadline(); ok {
		return context.WithDeadline(detached, deadline)
	}
	return detached, func() {}
}

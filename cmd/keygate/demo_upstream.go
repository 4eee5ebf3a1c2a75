package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/demo"
	"github.com/keygate/keygate/identity"
)

// newDemoUpstreamCommand serves only the demo's two upstream APIs, for
// deployments where keygate runs elsewhere (deploy/compose.yaml): they
// verify keygate's identity header against its JWKS, as any upstream
// should.
func newDemoUpstreamCommand() *cobra.Command {
	var jwksURL, menusListen, eventsListen string
	cmd := &cobra.Command{
		Use:   "upstream",
		Short: "Serve only the demo APIs (menus, events), verifying keygate's identity header against its JWKS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			keys, err := fetchJWKS(ctx, jwksURL)
			if err != nil {
				return err
			}
			verifier := identity.NewVerifier(keys)
			readerFor := func(api string) demo.IdentityReader {
				return func(r *http.Request) (*keygate.Identity, error) { return verifier.FromRequest(r, api) }
			}
			errs := make(chan error, 2)
			var servers []*http.Server
			for _, s := range []struct {
				addr string
				h    http.Handler
			}{{menusListen, demo.MenusAPI(readerFor(demo.MenusAPIName))}, {eventsListen, demo.EventsAPI(readerFor(demo.EventsAPIName))}} {
				ln, err := net.Listen("tcp", s.addr)
				if err != nil {
					return err
				}
				srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
				servers = append(servers, srv)
				go func() { errs <- srv.Serve(ln) }()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "demo APIs: menus on %s, events on %s\n", menusListen, eventsListen)
			select {
			case <-ctx.Done():
			case err := <-errs:
				return err
			}
			// No config file here: the default grace.
			sctx, cancel := context.WithTimeout(context.Background(), config.DefaultShutdownGrace)
			defer cancel()
			for _, srv := range servers {
				_ = srv.Shutdown(sctx)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&jwksURL, "jwks-url", "http://127.0.0.1:8090/.well-known/jwks.json", "keygate's JWKS")
	cmd.Flags().StringVar(&menusListen, "menus-listen", "127.0.0.1:9080", "address of the menus API")
	cmd.Flags().StringVar(&eventsListen, "events-listen", "127.0.0.1:9081", "address of the events API")
	return cmd
}

// fetchJWKS reads keygate's key set, retrying for a minute while keygate
// starts (every instance signs with the one key in the database).
func fetchJWKS(ctx context.Context, url string) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	var last error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return set, err
		}
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			err = json.NewDecoder(res.Body).Decode(&set)
			res.Body.Close()
			if err == nil && res.StatusCode == http.StatusOK && len(set.Keys) > 0 {
				return set, nil
			}
			if err == nil {
				err = fmt.Errorf("%s answered %d", url, res.StatusCode)
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return set, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return set, fmt.Errorf("keygate's JWKS: %w", last)
}

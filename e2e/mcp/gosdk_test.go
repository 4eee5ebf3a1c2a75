package mcp_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/demo/mcpserver"
)

// TestGoSDKClient connects with the official Go MCP SDK, whose client
// follows the 2026-07-28 authorization revision: it validates the RFC 9207
// issuer of the redirect, asks for offline_access when the server lists it,
// and registers dynamically here.
func TestGoSDKClient(t *testing.T) {
	t.Parallel()
	s := sharedStack(t)
	u := s.newUser(t)
	const redirect = "http://127.0.0.1:33419/callback"
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{
			Metadata: &oauthex.ClientRegistrationMetadata{
				ClientName:              "keygate e2e (Go SDK)",
				RedirectURIs:            []string{redirect},
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				TokenEndpointAuthMethod: "none",
			},
		},
		RedirectURL:         redirect,
		RequestRefreshToken: true,
		AuthorizationCodeFetcher: func(_ context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			back, err := approve(args.URL, u, s.orgElse.ID)
			if err != nil {
				return nil, err
			}
			q := back.Query()
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "keygate-e2e-go", Version: "1.0.0"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.mcpURL, OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer session.Close()

	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: mcpserver.ToolListDispensaries, Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("list_dispensaries: %v %+v", err, res)
	}
	var page mcpserver.DispensariesPage
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, d := range page.Dispensaries {
		if !slices.Contains(states, d.State) {
			states = append(states, d.State)
		}
	}
	if page.Total == 0 || !slices.Equal(states, []string{"Colorado"}) {
		t.Errorf("globex sees dispensaries in %v (%d), want Colorado only", states, page.Total)
	}

	grants, err := s.store.ListOAuthGrants(ctx, keygate.OAuthGrantFilter{UserID: u.ID})
	if err != nil || len(grants) != 1 || grants[0].OrganizationID != s.orgElse.ID || grants[0].ClientName != "keygate e2e (Go SDK)" {
		t.Errorf("grants %+v (%v), want one for the Go SDK client and globex", grants, err)
	}
}

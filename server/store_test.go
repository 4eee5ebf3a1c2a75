package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/server"
	"github.com/keygate/keygate/sqlite"
)

func TestOpenStoreChoosesByDatabaseURL(t *testing.T) {
	t.Setenv(config.DatabaseURLEnv, "")
	ctx := context.Background()

	cfg, err := config.Parse("keygate.yaml", []byte("data_dir: '"+t.TempDir()+"'\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatalf("OpenStore without database_url: %v", err)
	}
	if _, ok := s.(*sqlite.Store); !ok {
		t.Errorf("OpenStore without database_url = %T, want *sqlite.Store", s)
	}
	s.Close()

	cfg.DatabaseURL = pgtest.NewSchema(t)
	s, err = server.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatalf("OpenStore with database_url: %v", err)
	}
	defer s.Close()
	if _, ok := s.(*postgres.Store); !ok {
		t.Errorf("OpenStore with database_url = %T, want *postgres.Store", s)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestOpenStoreKeepsThePasswordOutOfErrors(t *testing.T) {
	cfg, err := config.Parse("keygate.yaml", []byte("data_dir: '"+t.TempDir()+"'\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL = "postgres://keygate:s3cret-pw@127.0.0.1:1/keygate?connect_timeout=2"
	if s, err := server.OpenStore(context.Background(), cfg); err == nil {
		s.Close()
		t.Fatal("OpenStore succeeded against a closed port")
	} else if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("error shows the password: %v", err)
	}
}

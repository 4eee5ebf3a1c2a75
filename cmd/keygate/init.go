package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/config"
)

func newInitCommand() *cobra.Command {
	var dir string
	var force bool
	var p config.StarterParams
	cmd := &cobra.Command{
		Use:   "init --api NAME --preset cannmenus|canskan|custom --upstream URL",
		Short: "Write a first, commented keygate.yaml for one API",
		Long: "Writes DIR/keygate.yaml: one API in front of --upstream with a sample token route, " +
			"and keygate's own settings, every line commented. keygate migrate, tokens and serve " +
			"accept it unchanged; edit its routes to match your API.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := filepath.Join(dir, "keygate.yaml")
			text := config.Starter(p)
			// Checked before writing, so a bad flag leaves no file behind.
			if _, err := config.Parse(path, text); err != nil {
				return initFlagErrors(err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(path, flags, 0o600)
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s already exists; edit it, or run again with --force to replace it", path)
			} else if err != nil {
				return err
			}
			if _, err := f.Write(text); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wrote %s: API %s (%s preset) on %s, forwarding to %s\n", path, p.API, p.Preset, listenOr(p.Listen, "127.0.0.1:8080"), p.Upstream)
			fmt.Fprintln(out, "Next:")
			fmt.Fprintf(out, "  keygate migrate --config %s\n", path)
			fmt.Fprintf(out, "  keygate orgs create --config %s --slug acme\n", path)
			fmt.Fprintf(out, "  keygate tokens create --config %s --org acme --api %s --name \"Production server\"\n", path, p.API)
			fmt.Fprintf(out, "  keygate serve --config %s\n", path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".", "directory to write keygate.yaml in (created if missing); the SQLite database goes there too")
	f.StringVar(&p.API, "api", "", "the API's name: lower-case letters, digits, - and _ (required)")
	f.StringVar(&p.Preset, "preset", "", "wire behaviour: cannmenus, canskan or custom (required)")
	f.StringVar(&p.Upstream, "upstream", "", "URL of the API keygate guards, e.g. http://127.0.0.1:9000 (required)")
	f.StringVar(&p.Listen, "listen", "127.0.0.1:8080", "address keygate serves the API on")
	f.StringVar(&p.Admin, "admin-listen", "127.0.0.1:8090", "address of keygate's dashboard and management API")
	f.BoolVar(&force, "force", false, "replace an existing keygate.yaml")
	for _, name := range []string{"api", "preset", "upstream"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// initFlags names the flag behind each setting init writes.
var initFlags = map[string]string{
	"apis[0].name": "--api", "apis[0].preset": "--preset", "apis[0].upstream": "--upstream",
	"apis[0].listen": "--listen", "admin.listen": "--admin-listen", "admin.public_url": "--admin-listen",
}

// initFlagErrors words the config's refusal of init's output in terms of
// the flags that made it: there is no file to point at yet.
func initFlagErrors(err error) error {
	var errs config.Errors
	if !errors.As(err, &errs) {
		return err
	}
	var lines []string
	for _, e := range errs {
		if flag, ok := initFlags[e.Path]; ok {
			lines = append(lines, flag+": "+e.Reason)
		} else if !strings.HasPrefix(e.Path, "apis[0].token_prefix") {
			// token_prefix follows from --api, whose own error says it.
			lines = append(lines, e.Error())
		}
	}
	return errors.New(strings.Join(slices.Compact(lines), "\n"))
}

func listenOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

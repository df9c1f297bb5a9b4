package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
)

// parseFlags parses args into fs, then fills every flag not given on the
// command line from HERALD_<FLAG_NAME> or, failing that, the JSON config
// file named by --config or HERALD_CONFIG: flag > environment > file >
// default. A non-nil configurable picks which flags are read from the
// environment and the file: a command's own switches such as --json or
// --limit should not be set by a stray HERALD_JSON.
func parseFlags(fs *flag.FlagSet, args []string, configurable func(name string) bool) error {
	config := fs.String("config", "", "JSON config file whose keys are flag names (env HERALD_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; run with -h for the flags", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *config == "" {
		*config = os.Getenv("HERALD_CONFIG")
	}
	file := map[string]any{}
	if *config != "" {
		b, err := os.ReadFile(*config)
		if err != nil {
			return fmt.Errorf("read config file: %w", err)
		}
		if err := json.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("config file %s: %w", *config, err)
		}
		for k := range file {
			if fs.Lookup(k) == nil {
				return fmt.Errorf("config file %s: unknown setting %q", *config, k)
			}
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" || err != nil || (configurable != nil && !configurable(f.Name)) {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if e := fs.Set(f.Name, fmt.Sprint(v)); e != nil {
				err = fmt.Errorf("config file %s: %w", f.Name, e)
			}
		}
	})
	return err
}

// envName maps a flag name to its environment variable: data-dir → HERALD_DATA_DIR.
func envName(flagName string) string {
	return "HERALD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// none configures no flag from the environment or a file.
func none(string) bool { return false }

package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/heraldhq/herald/internal/catalog"
	"github.com/heraldhq/herald/internal/server"
)

func catalogCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("catalog", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print every type with its schema and example as JSON")
	group := fs.String("group", "", "only this group, e.g. payment")
	if err := parseFlags(fs, args, none); err != nil {
		return err
	}
	cat, err := catalog.Load()
	if err != nil {
		return err
	}
	types := cat.All()
	if *group != "" {
		types = nil
		for _, t := range cat.All() {
			if t.Group == *group {
				types = append(types, t)
			}
		}
		if len(types) == 0 {
			return fmt.Errorf("no group %q; groups: %s", *group, strings.Join(cat.Groups(), ", "))
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(types)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tTITLE\tORIGINS")
	for _, t := range types {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.Title, strings.Join(t.Origins, ","))
	}
	return tw.Flush()
}

func versionCmd(stdout io.Writer) error {
	_, err := fmt.Fprintln(stdout, "herald", server.Version)
	return err
}

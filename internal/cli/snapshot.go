package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"
)

// cmdSnapshot is `dbinit snapshot list [--json]` and
// `dbinit snapshot restore NAME`.
func cmdSnapshot(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	asJSON := fs.Bool("json", false, "list: print JSON")
	return func(ctx context.Context, r *run, args []string) error {
		if len(args) == 0 {
			return &usageError{"snapshot: needs list or restore NAME"}
		}
		srv, target, closeAll, err := r.server(ctx)
		if err != nil {
			return err
		}
		defer closeAll()
		switch args[0] {
		case "list":
			if len(args) != 1 {
				return &usageError{"snapshot: list takes no arguments"}
			}
			snaps, err := srv.Snapshots(ctx, r.cfg.Database)
			if err != nil {
				return err
			}
			if *asJSON {
				enc := json.NewEncoder(r.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Database  string `json:"database"`
					Snapshots any    `json:"snapshots"`
				}{r.cfg.Database, nonNil(snaps)})
			}
			if len(snaps) == 0 {
				fmt.Fprintf(r.stdout, "no snapshots of %s\n", r.cfg.Database)
				return nil
			}
			tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SNAPSHOT\tCREATED\tSIZE\tNOTE")
			for _, sn := range snaps {
				note := ""
				if sn.Replaced {
					note = "the working database a restore replaced; kept until you drop it"
				}
				fmt.Fprintf(tw, "%s\t%s\t%.1f MB\t%s\n", sn.Name, sn.Created.UTC().Format(time.RFC3339), float64(sn.Bytes)/1e6, note)
			}
			return tw.Flush()
		case "restore":
			if len(args) != 2 {
				return &usageError{"snapshot: restore needs exactly one snapshot NAME (see dbinit snapshot list)"}
			}
			kept, err := srv.Restore(ctx, target, r.cfg.Database, args[1])
			if err != nil {
				return err
			}
			if kept != "" {
				fmt.Fprintf(r.stdout, "%s restored as %s; the previous %s is kept as %s\n", args[1], r.cfg.Database, r.cfg.Database, kept)
			} else {
				fmt.Fprintf(r.stdout, "%s restored as %s\n", args[1], r.cfg.Database)
			}
			return nil
		}
		return &usageError{fmt.Sprintf("snapshot: unknown subcommand %q (list, restore NAME)", args[0])}
	}
}

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookbay/hookbay/certs"
	"github.com/hookbay/hookbay/config"
)

const certsUsage = `usage:
  hookbay certs init [--dir DIR] [--hosts localhost,127.0.0.1,::1,...] [--force]
      a local CA, a server certificate for the hosts and a client certificate
      (CN hookbay-client) for mTLS tests; PEM without passwords, keys 0600
  hookbay certs client [--dir DIR] --cn NAME [--days N] [--force]
      another client certificate, DIR/NAME.pem and DIR/NAME-key.pem, signed by
      the CA in DIR
  hookbay certs show [--json] FILE
      subject, SANs, issuer, validity, usage and SHA-256 fingerprint of each
      certificate in a PEM file; warns when expired or expiring within 30 days

DIR defaults to hookbay-data/certs-local, under the default data directory
(hookbay-data/certs is dev mode's own). A directory holding Go source is
refused: private keys do not belong in a source tree. Existing files are
only replaced with --force.
`

// defaultCertsDir is where "hookbay certs" writes and reads by default:
// under the data directory, beside dev mode's certs/ rather than in it.
var defaultCertsDir = filepath.Join(config.Default().Server.DataDir, "certs-local")

// CertsCommand is "hookbay certs": a local CA and certificates for HTTPS
// and mTLS tests.
type CertsCommand struct {
	Stdout, Stderr io.Writer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Run dispatches init, client and show.
func (cmd *CertsCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(cmd.Stderr, certsUsage)
		return usageError{"no certs command given (init, client, show)"}
	}
	if isHelp(args[0]) {
		fmt.Fprint(cmd.Stdout, certsUsage)
		return flag.ErrHelp
	}
	now := time.Now
	if cmd.Now != nil {
		now = cmd.Now
	}
	set := flag.NewFlagSet("certs "+args[0], flag.ContinueOnError)
	set.Usage = func() {
		fmt.Fprint(set.Output(), certsUsage)
		fmt.Fprintf(set.Output(), "\nflags of %s:\n", set.Name())
		set.PrintDefaults()
	}
	switch args[0] {
	case "init":
		dir := set.String("dir", defaultCertsDir, "directory to write the files to")
		hosts := set.String("hosts", "localhost,127.0.0.1,::1", "comma-separated DNS names and IP addresses for the server certificate")
		force := set.Bool("force", false, "replace existing files")
		if err := parseOnlyFlags(set, args[1:], cmd.Stdout, cmd.Stderr); err != nil {
			return err
		}
		if err := refuseSourceDir(*dir); err != nil {
			return err
		}
		var hostList []string
		for _, h := range strings.Split(*hosts, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hostList = append(hostList, h)
			}
		}
		if len(hostList) == 0 {
			return errors.New("--hosts: no host names")
		}
		files, err := certs.Init(*dir, hostList, *force, now())
		if err != nil {
			return certsForceHint(err)
		}
		fmt.Fprintf(cmd.Stdout, "Wrote a local CA, a server certificate and a client certificate to %s:\n", *dir)
		tw := tabwriter.NewWriter(cmd.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  %s\tCA certificate: server.tls.client_ca_file, and what HTTPS clients trust\n", files.CA)
		fmt.Fprintf(tw, "  %s\tCA key: keep it private; \"hookbay certs client\" signs with it\n", files.CAKey)
		fmt.Fprintf(tw, "  %s\tserver certificate for %s (server.tls.cert_file)\n", files.Cert, strings.Join(hostList, ", "))
		fmt.Fprintf(tw, "  %s\tserver key (server.tls.key_file)\n", files.Key)
		fmt.Fprintf(tw, "  %s\tclient certificate, CN %s, for mTLS senders such as Bloomreach\n", files.ClientCert, certs.ClientCN)
		fmt.Fprintf(tw, "  %s\tclient key, unencrypted PEM\n", files.ClientKey)
		return tw.Flush()
	case "client":
		dir := set.String("dir", defaultCertsDir, "directory holding ca.pem and ca-key.pem; the new files go there too")
		cn := set.String("cn", "", "subject CN, also the file name (required)")
		days := set.Int("days", certs.DefaultClientDays, "days the certificate stays valid")
		force := set.Bool("force", false, "replace existing files")
		if err := parseOnlyFlags(set, args[1:], cmd.Stdout, cmd.Stderr); err != nil {
			return err
		}
		if err := refuseSourceDir(*dir); err != nil {
			return err
		}
		if *cn == "" {
			return errors.New("--cn is required")
		}
		certPath, keyPath, err := certs.IssueClient(*dir, *cn, *days, *force, now())
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w (run \"hookbay certs init --dir %s\" first)", err, *dir)
		} else if err != nil {
			return certsForceHint(err)
		}
		b, err := os.ReadFile(certPath)
		if err != nil {
			return err
		}
		infos, err := certs.Describe(b, now())
		if err != nil {
			return fmt.Errorf("%s: %w", certPath, err)
		}
		fmt.Fprintf(cmd.Stdout, "Wrote %s and %s: client certificate %s, valid until %s, signed by the CA in %s.\n",
			certPath, keyPath, infos[0].Subject, infos[0].NotAfter.UTC().Format(time.RFC3339), *dir)
		return nil
	case "show":
		asJSON := set.Bool("json", false, "print JSON")
		pos, err := parseFlags(set, args[1:], cmd.Stdout, cmd.Stderr)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return errors.New("usage: hookbay certs show [--json] FILE")
		}
		b, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		infos, err := certs.Describe(b, now())
		if err != nil {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
		if *asJSON {
			return printJSON(cmd.Stdout, infos)
		}
		return printCertInfos(cmd.Stdout, infos)
	}
	fmt.Fprint(cmd.Stderr, certsUsage)
	return fmt.Errorf("unknown certs command %q", args[0])
}

// refuseSourceDir refuses to write private keys into a directory that
// holds Go source: run from a checkout, "--dir certs" is the certs
// package, and keys written there are one "git add" away from published.
func refuseSourceDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("--dir %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".go") {
			return fmt.Errorf("--dir %s holds Go source (%s): private keys do not belong in a source tree; choose another directory (default %s)",
				dir, e.Name(), defaultCertsDir)
		}
	}
	return nil
}

// certsForceHint tells the user how to overwrite when err is about an existing
// file.
func certsForceHint(err error) error {
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w (use --force to replace it)", err)
	}
	return err
}

// printCertInfos prints one labelled block per certificate.
func printCertInfos(w io.Writer, infos []certs.CertInfo) error {
	var b strings.Builder
	line := func(label, value string) { fmt.Fprintf(&b, "%-14s%s\n", label+":", value) }
	for i, c := range infos {
		if i > 0 {
			b.WriteString("\n")
		}
		if len(infos) > 1 {
			fmt.Fprintf(&b, "Certificate %d of %d\n", i+1, len(infos))
		}
		line("Subject", c.Subject)
		for _, san := range []struct {
			label  string
			values []string
		}{{"DNS names", c.DNSNames}, {"IP addresses", c.IPAddresses}, {"URIs", c.URIs}, {"Emails", c.Emails}} {
			if len(san.values) > 0 {
				line(san.label, strings.Join(san.values, ", "))
			}
		}
		line("Issuer", c.Issuer)
		line("Not before", c.NotBefore.UTC().Format(time.RFC3339))
		line("Not after", c.NotAfter.UTC().Format(time.RFC3339))
		usage := strings.Join(c.Usage, ", ")
		if usage == "" {
			usage = "none of server, client, CA"
		}
		line("Usage", usage)
		line("SHA-256", c.Fingerprint)
		line("Status", certStatus(c))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func certStatus(c certs.CertInfo) string {
	switch c.Status {
	case certs.StatusExpired:
		return "EXPIRED on " + c.NotAfter.UTC().Format(time.RFC3339)
	case certs.StatusNotYetValid:
		return "not yet valid (valid from " + c.NotBefore.UTC().Format(time.RFC3339) + ")"
	case certs.StatusExpiring:
		return fmt.Sprintf("WARNING: expires in %s", certDays(c.DaysLeft))
	}
	return fmt.Sprintf("valid for %s more", certDays(c.DaysLeft))
}

func certDays(n int) string {
	if n == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", n)
}

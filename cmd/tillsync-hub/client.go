package main

// The admin commands talk to a running hub over its HTTP API, as any other
// client would: they never open the ledger behind the hub's back (verify
// --data-dir, read-only while no hub runs, is the one exception).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/internal/cli"
	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
)

// hubEnv names the environment variable with the default --hub.
const hubEnv = "TILLSYNC_HUB"

// defaultHub is the hub's API when neither --hub nor TILLSYNC_HUB says otherwise.
const defaultHub = "http://127.0.0.1:8080"

// tokenEnv names the environment variable with the API token to send.
const tokenEnv = "TILLSYNC_HUB_TOKEN"

// giveToken says how to give the admin commands an API token.
const giveToken = "--token-file FILE, $" + tokenEnv + " or --token (tillsync-hub apitoken add makes one; the hub writes an operator token to operator.token in its data dir, found with --data-dir)"

// apiFlags are the flags every admin command takes.
type apiFlags struct {
	hub  string
	json bool
	// token, tokenFile and dataDir choose the API token (see apiToken).
	token, tokenFile, dataDir string
}

// add registers --hub, the token flags (--data-dir unless c has its own)
// and --json when output is true on c.
func (f *apiFlags) add(c *cobra.Command, output bool) {
	def := os.Getenv(hubEnv)
	if def == "" {
		def = defaultHub
	}
	c.Flags().StringVar(&f.hub, "hub", def, "the hub's HTTP API ($"+hubEnv+" sets the default)")
	c.Flags().StringVar(&f.token, "token", "", "the API token to send (TSA1.…); other users can see a command line: prefer --token-file or $"+tokenEnv)
	c.Flags().StringVar(&f.tokenFile, "token-file", "", "send the API token in this file (its first line); used when neither --token nor $"+tokenEnv+" gives one")
	f.dataDir = cli.DefaultDataDir("hub")
	if c.Flags().Lookup("data-dir") == nil {
		c.Flags().StringVar(&f.dataDir, "data-dir", f.dataDir, "the hub's data dir: without --token, $"+tokenEnv+" or --token-file, send the operator token the hub keeps there ("+hub.OperatorTokenFile+")")
	}
	if output {
		c.Flags().BoolVar(&f.json, "json", false, "print the hub's JSON answer instead of a table")
	}
}

// apiToken returns the API token to send and where it came from: --token,
// else $TILLSYNC_HUB_TOKEN, else --token-file, else the data dir's
// operator.token. The data dir's file may be missing or unreadable (this
// user may administer a hub elsewhere): then token is "" and from says why.
// The token itself never appears in an error.
func (f *apiFlags) apiToken() (token, from string, err error) {
	switch {
	case f.token != "":
		token, from = f.token, "--token"
	case os.Getenv(tokenEnv) != "":
		token, from = os.Getenv(tokenEnv), "$"+tokenEnv
	case f.tokenFile != "":
		from = "--token-file " + f.tokenFile
		if token, err = readTokenFile(f.tokenFile); err != nil {
			return "", "", fmt.Errorf("--token-file %s: %v", f.tokenFile, err)
		}
	default:
		path := filepath.Join(f.dataDir, hub.OperatorTokenFile)
		if token, err = readTokenFile(path); err != nil {
			return "", fmt.Sprintf("%s: %v", path, err), nil
		}
		from = path
	}
	if _, _, err := protocol.ParseAPIToken(token); err != nil {
		if from == "--token" {
			return "", "", cli.Usagef("the API token from --token is not one (want TSA1.<id>.<secret>); give one with %s", giveToken)
		}
		return "", "", fmt.Errorf("the API token from %s is not one (want TSA1.<id>.<secret>); give one with %s", from, giveToken)
	}
	return strings.TrimSpace(token), from, nil
}

// readTokenFile reads the first line of a token file.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", rootErr(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4<<10))
	if err != nil {
		return "", rootErr(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSpace(line), nil
}

// client returns an API client for --hub with the API token, or a usage
// error for a URL that is not one.
func (f *apiFlags) client() (*client, error) {
	raw := f.hub
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, cli.Usagef("--hub %q: want the hub's HTTP API as http://host:port (set with --hub or $%s)", f.hub, hubEnv)
	}
	token, from, err := f.apiToken()
	if err != nil {
		return nil, err
	}
	c := &client{base: u.Scheme + "://" + u.Host, http: &http.Client{Timeout: 30 * time.Second}, token: token, tokenFrom: from}
	if token != "" {
		c.tokenID, _, _ = protocol.ParseAPIToken(token)
	}
	return c, nil
}

// client calls the hub's HTTP API.
type client struct {
	base string
	http *http.Client
	// token is sent as the bearer token; tokenID names it in messages, and
	// tokenFrom says where it came from (or, without one, why there is none).
	token, tokenID, tokenFrom string
}

// do sends a request (body: nil, []byte as is, or a value as JSON) and
// returns the answer's body when it is 2xx; otherwise the hub's error as
// one line, "code: message".
func (c *client) do(method, path string, body any) ([]byte, error) {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/yaml"
	default:
		js, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd, ctype = bytes.NewReader(js), "application/json"
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, c.unreachable(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the hub's answer from %s: %v", c.base, err)
	}
	if res.StatusCode/100 == 2 {
		return data, nil
	}
	var eb httpx.ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		if eb.Error.Code == protocol.CodeUnauthorized || eb.Error.Code == protocol.CodeForbidden {
			return nil, c.refused(eb.Error.Code, eb.Error.Message)
		}
		return nil, fmt.Errorf("%s: %s", eb.Error.Code, oneLine(eb.Error.Message))
	}
	return nil, fmt.Errorf("the hub at %s answered %s to %s %s; is --hub the hub's HTTP API?", c.base, res.Status, method, path)
}

// get decodes the JSON answer to GET path into v, and returns it raw too.
func (c *client) get(path string, v any) ([]byte, error) {
	return c.call("GET", path, nil, v)
}

// call sends a request and decodes the JSON answer into v (when not nil).
func (c *client) call(method, path string, body, v any) ([]byte, error) {
	data, err := c.do(method, path, body)
	if err != nil {
		return nil, err
	}
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			return nil, fmt.Errorf("the hub at %s answered %s %s with something unexpected (%v); is --hub the hub's HTTP API?", c.base, method, path, err)
		}
	}
	return data, nil
}

// refused explains a 401 or 403 in one line: the hub's reason, which token
// was sent (by id) and from where, and how to give another.
func (c *client) refused(code protocol.Code, msg string) error {
	msg = oneLine(msg)
	switch {
	case c.token == "":
		return fmt.Errorf("%s: the hub at %s wants an API token and none was given (%s); give one with %s", code, c.base, c.tokenFrom, giveToken)
	case code == protocol.CodeForbidden:
		return fmt.Errorf("%s: %s (API token %s from %s); give a token whose role allows it with %s", code, msg, c.tokenID, c.tokenFrom, giveToken)
	}
	return fmt.Errorf("%s: %s (API token %s from %s); give a valid one with %s", code, msg, c.tokenID, c.tokenFrom, giveToken)
}

func (c *client) unreachable(err error) error {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("the hub at %s did not answer in time; is it overloaded or stuck?", c.base)
	case errors.As(err, &oe):
		return fmt.Errorf("cannot reach the hub at %s (%v); is it running with --http-listen there? Set the address with --hub or $%s", c.base, rootErr(oe), hubEnv)
	}
	return fmt.Errorf("cannot reach the hub at %s: %v", c.base, oneLine(err.Error()))
}

func rootErr(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// show GETs path into out for a command that prints what it got: with
// --json it prints the answer as the hub sent it and reports done, so the
// caller only has its table to format.
func (f *apiFlags) show(c *cobra.Command, path string, out any) (cl *client, done bool, err error) {
	if cl, err = f.client(); err != nil {
		return nil, false, err
	}
	raw, err := cl.get(path, out)
	if err != nil {
		return nil, false, err
	}
	if f.json {
		return cl, true, printJSON(c, raw)
	}
	return cl, false, nil
}

// printJSON prints a JSON answer indented.
func printJSON(c *cobra.Command, data []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(data), "", "  "); err != nil {
		buf.Reset()
		buf.Write(bytes.TrimSpace(data))
	}
	buf.WriteByte('\n')
	_, err := c.OutOrStdout().Write(buf.Bytes())
	return err
}

// table writes aligned columns to the command's output.
type table struct{ w *tabwriter.Writer }

func newTable(c *cobra.Command, header ...string) *table {
	t := &table{w: tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cols ...string) { fmt.Fprintln(t.w, strings.Join(cols, "\t")) }
func (t *table) flush()             { t.w.Flush() }

// when formats an instant for people: UTC, to the second; "-" when zero.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// ago says how long ago t was, as of now.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return when(t)
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return when(t)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// count writes n and noun, plural unless n is 1: "1 store", "3 stores".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

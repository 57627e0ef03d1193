package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/config"
	"github.com/tillsync/tillsync/hub/pki"
	"github.com/tillsync/tillsync/internal/cli"
	"github.com/tillsync/tillsync/protocol"
)

// enrollAnswer is the hub's answer to POST /v1/enroll.
type enrollAnswer struct {
	Store           string   `json:"store"`
	Terminal        string   `json:"terminal"`
	Partner         string   `json:"partner"`
	MQTTUsername    string   `json:"mqtt_username"`
	MQTTPassword    string   `json:"mqtt_password"`
	CAPEM           string   `json:"ca_pem"`
	MemberTokenKeys []string `json:"member_token_keys"`
	MQTTURL         string   `json:"mqtt_url"`
	MACKey          string   `json:"mac_key"`
}

func enrollCmd() *cobra.Command {
	var hub, token, dataDir string
	var force, plain bool
	c := &cobra.Command{
		Use:   "enroll",
		Short: "Enroll this till with the hub: its own key pair and MQTT credentials",
		Long: `Enroll this till with the hub, once, with the one-time token the hub's
operator printed with "tillsync-hub terminal add" (or "terminal token").

It makes the terminal's Ed25519 key pair (the private key never leaves the
till), registers the public key with the hub, and keeps in the data dir,
readable by this user only: the terminal's key, its MQTT credentials and,
when the hub has one, the hub's CA certificate. "run" then connects with them.
Over https the hub's certificate is checked against the fingerprint in the
token before anything is sent.`,
		Example: `  tillsync-agent enroll --hub http://127.0.0.1:8080 --token TSE1.… --data-dir ./agent-data`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if token == "" {
				return cli.Usagef("--token is required: the enrollment token from tillsync-hub terminal add")
			}
			_, _, fp, err := protocol.ParseEnrollmentToken(token)
			if err != nil {
				return cli.Usagef("--token: not an enrollment token (TSE1.…); copy it whole from tillsync-hub terminal add")
			}
			u, err := url.Parse(hub)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return cli.Usagef("--hub %q: want the hub's HTTP API address, e.g. https://hub.example.com:8443", hub)
			}
			if u.Scheme == "http" && !plain && !cli.LoopbackAddr(u.Host) {
				return cli.Usagef("--hub %s: plain http to a hub on another machine carries the token and the terminal's password in clear; use https://HOST:PORT (the hub's --https-listen), or add --hub-plain on a network you trust", hub)
			}
			if err := cli.DataDir(dataDir, "--data-dir"); err != nil {
				return err
			}
			if e, found, err := agent.LoadEnrollment(dataDir); err != nil {
				return err
			} else if found && !force {
				return fmt.Errorf("%s is already enrolled as %s/%s; use another --data-dir, or --force to enroll it again", dataDir, e.Store, e.Terminal)
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			ans, err := postEnroll(u, fp, token, pub)
			if err != nil {
				return err
			}
			e := agent.Enrollment{Store: ans.Store, Terminal: ans.Terminal, Partner: ans.Partner,
				Username: ans.MQTTUsername, Password: ans.MQTTPassword, Hub: hub, MemberTokenKeys: ans.MemberTokenKeys, MACKey: ans.MACKey}
			if _, err := config.ParseHub(ans.MQTTURL); err == nil {
				e.MQTT = ans.MQTTURL
			}
			if err := agent.SaveEnrollment(dataDir, e, priv, []byte(ans.CAPEM)); err != nil {
				return err
			}
			out := c.OutOrStdout()
			fmt.Fprintf(out, "Enrolled as store %s, terminal %s (partner %s); credentials kept in %s.\n", e.Store, e.Terminal, e.Partner, dataDir)
			if e.MQTT != "" {
				fmt.Fprintf(out, "The hub's broker: %s (the agent uses it unless its config names another hub).\n", e.MQTT)
				fmt.Fprintf(out, "Run it with: tillsync-agent run --data-dir %s\n", dataDir)
			} else {
				fmt.Fprintf(out, "Run it with: tillsync-agent run --data-dir %s --hub tls://HUB:PORT\n", dataDir)
			}
			return nil
		},
	}
	c.Flags().StringVar(&hub, "hub", "http://127.0.0.1:8080", "the hub's HTTP API address (https:// pins the hub's certificate to the token's fingerprint)")
	c.Flags().StringVar(&token, "token", "", "the one-time enrollment token (TSE1.…) from tillsync-hub terminal add")
	c.Flags().StringVar(&dataDir, "data-dir", cli.DefaultDataDir("agent"), "the agent's data dir, where the credentials are kept (owner-only)")
	c.Flags().BoolVar(&plain, "hub-plain", false, "allow http:// to a hub on another machine (the token and the credentials cross the network in clear)")
	c.Flags().BoolVar(&force, "force", false, "enroll a data dir that is already enrolled, replacing its credentials")
	return c
}

// postEnroll sends the enrollment request. Over https the hub's
// certificate chain must include the CA whose fingerprint the token names
// (when it names one): the till trusts nothing else before it has the CA.
func postEnroll(u *url.URL, fingerprint, token string, pub ed25519.PublicKey) (enrollAnswer, error) {
	var ans enrollAnswer
	cl := &http.Client{Timeout: 15 * time.Second}
	if u.Scheme == "https" && fingerprint != "" {
		cl.Transport = &http.Transport{TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: true, // verified below, against the pinned CA
			VerifyConnection: func(cs tls.ConnectionState) error {
				return verifyPinned(cs, fingerprint)
			},
		}}
	}
	body, _ := json.Marshal(map[string]string{"token": token, "public_key": base64.StdEncoding.EncodeToString(pub)})
	resp, err := cl.Post(u.JoinPath("/v1/enroll").String(), "application/json", bytes.NewReader(body))
	if err != nil {
		return ans, fmt.Errorf("enroll at %s: %w; is the hub's HTTP API reachable at --hub?", u.Host, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return ans, fmt.Errorf("the hub refused the enrollment: %s: %s", e.Error.Code, e.Error.Message)
		}
		return ans, fmt.Errorf("the hub refused the enrollment: HTTP %d", resp.StatusCode)
	}
	if err := json.Unmarshal(data, &ans); err != nil || ans.MQTTPassword == "" || !protocol.ValidID(ans.Store) || !protocol.ValidID(ans.Terminal) {
		return ans, errors.New("the hub's answer to the enrollment is not readable; is --hub the hub's HTTP API?")
	}
	if _, err := protocol.ParseTokenKeys(ans.MemberTokenKeys); err != nil {
		return ans, fmt.Errorf("the hub's answer to the enrollment: %w", err)
	}
	// A hub of protocol version 2 gives no MAC key; one it gives must be one.
	if _, err := (agent.Enrollment{MACKey: ans.MACKey}).Key(); err != nil {
		return ans, errors.New("the hub's answer to the enrollment: its MAC key is not readable")
	}
	return ans, nil
}

// verifyPinned checks that the server's chain verifies against, and
// contains, the CA with the given SHA-256 fingerprint.
func verifyPinned(cs tls.ConnectionState, fingerprint string) error {
	var ca *x509.Certificate
	for _, c := range cs.PeerCertificates {
		if pki.Fingerprint(c.Raw) == fingerprint {
			ca = c
		}
	}
	if ca == nil || len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("the hub's certificate is not from the CA the enrollment token names (sha256:%s); is --hub the right hub?", fingerprint[:16])
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: cs.ServerName})
	if err != nil {
		return fmt.Errorf("the hub's certificate: %w", err)
	}
	return nil
}

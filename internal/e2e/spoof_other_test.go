//go:build !unix

package e2e

import "testing"

// mosquittoWorld needs Mosquitto, which the suite runs on Unix only.
func mosquittoWorld(t *testing.T) *spoofWorld {
	t.Skip("the spoofing suite over Mosquitto runs on Unix")
	return nil
}

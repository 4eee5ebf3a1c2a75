package gateway

import "time"

// SetUpstreamTLSHandshakeTimeout lets tests wait for a stalled handshake
// for less than the production timeout; it returns the previous value.
func SetUpstreamTLSHandshakeTimeout(d time.Duration) time.Duration {
	old := upstreamTLSHandshakeTimeout
	upstreamTLSHandshakeTimeout = d
	return old
}

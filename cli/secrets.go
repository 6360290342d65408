package cli

import "strings"

// warnWeakSecrets logs, at WARN, each secret of the config weak enough to
// guess (config.Warnings): the key and why, never the secret itself.
// Start-up goes on; a sender's own tooling may have set the secret.
func (m *Main) warnWeakSecrets() {
	for _, w := range m.Config.Warnings() {
		key, why, _ := strings.Cut(w, ": ")
		m.Logger.Warn("weak secret", "key", key, "why", why)
	}
}

package gateway

import (
	"github.com/switchboard/switchboard/protocol"
)

// presence handles presence, privacy and contacts frames.
func (l *loop) presence(c *wsConn, r *protocol.Request, now int64) {
	l.writeError(c, r.ID, protocol.CodeUnknownType, "not supported by this server yet")
}

package client

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("client: closed")

	// ErrRunning is returned by Run when the Client is already running.
	ErrRunning = errors.New("client: already running")

	// ErrUnauthorized matches a *HandshakeError whose status is 401: the
	// server rejected the token. With a static Config.Token, Run returns it
	// (retrying cannot help); with a TokenSource, Run keeps retrying so that
	// the source can renew the token.
	ErrUnauthorized = errors.New("client: unauthorized")

	// ErrOutboxFull is returned by Send, MarkDelivered and MarkRead when
	// Config.MaxOutbox entries are waiting for the server's ack.
	ErrOutboxFull = errors.New("client: outbox full")

	// ErrStateLocked is returned by New when another Client holds StateDir.
	ErrStateLocked = errors.New("client: state directory in use by another client")

	// ErrNotConnected is matched by the error of a Request (and of the
	// helpers built on it) made while the Client has no connection, or
	// whose connection was lost before the reply: then the server may or
	// may not have carried the request out.
	ErrNotConnected = errors.New("client: not connected")

	// ErrReplaced matches the *CloseError of a connection the server
	// closed with 4003: a newer connection of the same user and device
	// (the token's) opened, here or on another gateway. Run returns it
	// rather than reconnecting, which would close the newer one in turn:
	// two copies of one device would replace each other forever.
	ErrReplaced = errors.New("client: replaced by a newer connection of this device")
)

// CloseCode is a WebSocket close code (RFC 6455 section 7.4, and 4000–4999
// for Switchboard's own).
type CloseCode uint16

// Close codes used by the Switchboard server.
const (
	CloseNormal          CloseCode = 1000 // normal closure
	CloseGoingAway       CloseCode = 1001 // server shutdown
	CloseProtocolError   CloseCode = 1002 // the client broke the protocol
	CloseUnsupportedData CloseCode = 1003 // binary frame
	CloseNoStatus        CloseCode = 1005 // a close frame without a code
	CloseInvalidPayload  CloseCode = 1007 // invalid UTF-8
	ClosePolicyViolation CloseCode = 1008 // policy violation
	CloseTooBig          CloseCode = 1009 // frame or message too big
	CloseInternal        CloseCode = 1011 // server internal error
	CloseServiceRestart  CloseCode = 1012 // server restarting: reconnect
	CloseSlowConsumer    CloseCode = 4000 // client did not read; reconnect and sync
	CloseIdleTimeout     CloseCode = 4001 // idle connection closed
	CloseTooManyDevices  CloseCode = 4002 // the user has max_devices other devices connected
	CloseReplaced        CloseCode = 4003 // a newer connection of this device opened
)

var closeCodeNames = map[CloseCode]string{
	CloseNormal:          "normal closure",
	CloseGoingAway:       "going away",
	CloseProtocolError:   "protocol error",
	CloseUnsupportedData: "unsupported data",
	CloseNoStatus:        "no status",
	CloseInvalidPayload:  "invalid payload",
	ClosePolicyViolation: "policy violation",
	CloseTooBig:          "message too big",
	CloseInternal:        "internal server error",
	CloseServiceRestart:  "service restart",
	CloseSlowConsumer:    "slow consumer",
	CloseIdleTimeout:     "idle timeout",
	CloseTooManyDevices:  "too many devices",
	CloseReplaced:        "replaced",
}

// String returns a short description such as "4000 slow consumer".
func (c CloseCode) String() string {
	s := strconv.Itoa(int(c))
	if n, ok := closeCodeNames[c]; ok {
		return s + " " + n
	}
	return s
}

// CloseError reports that the connection ended with a close frame: sent by
// the server (Local false) or by this client after a protocol violation by
// the server (Local true). It is the Err of the StateChange that follows.
type CloseError struct {
	Code   CloseCode
	Reason string
	Local  bool
}

func (e *CloseError) Error() string {
	who := "server"
	if e.Local {
		who = "client"
	}
	if e.Reason == "" {
		return "client: connection closed by " + who + ": " + e.Code.String()
	}
	return "client: connection closed by " + who + ": " + e.Code.String() + ": " + e.Reason
}

// Is makes errors.Is(err, ErrReplaced) true for a 4003 from the server.
func (e *CloseError) Is(target error) bool {
	return target == ErrReplaced && e.Code == CloseReplaced && !e.Local
}

// HandshakeError reports that the server answered the WebSocket upgrade
// with an HTTP status other than 101. errors.Is(err, ErrUnauthorized)
// reports whether the status was 401.
type HandshakeError struct {
	StatusCode int
}

func (e *HandshakeError) Error() string {
	return "client: handshake rejected with HTTP status " + strconv.Itoa(e.StatusCode)
}

// Is makes errors.Is(err, ErrUnauthorized) true for a 401.
func (e *HandshakeError) Is(target error) bool {
	return target == ErrUnauthorized && e.StatusCode == 401
}

// Error codes of the server's error frames (protocol v1). They are stable.
const (
	CodeBadRequest   = "bad_request"
	CodeUnknownType  = "unknown_type"
	CodeRateLimited  = "rate_limited"
	CodeOverloaded   = "overloaded"
	CodeInternal     = "internal"
	CodeShuttingDown = "shutting_down"

	CodeNotFound             = "not_found"              // no such group; msg.info of a message not yours
	CodeNotMember            = "not_member"             // not a member of the group
	CodeNotAdmin             = "not_admin"              // only the group's admins may do that
	CodeGroupFull            = "group_full"             // the group would pass its member limit
	CodeTooManyDevices       = "too_many_devices"       // the user has max_devices other devices connected
	CodeTooManySubscriptions = "too_many_subscriptions" // presence.sub past the connection's limit
)

// ServerError is an error frame from the server. It is returned by
// Request (and the helpers built on it) for the request it answers, and
// otherwise delivered as an event. It implements error.
//
// When ID names an outbox entry (a Send or a receipt) and the code is not
// retriable (see IsRetriable), the entry has been removed from the outbox:
// the server will never accept it. Retriable errors are retried by the
// Client itself, with the same id, and are delivered for information only.
type ServerError struct {
	ID      string // client id of the frame concerned, if any
	Code    string // stable code, e.g. CodeRateLimited
	Message string // human-readable detail
}

func (e *ServerError) Error() string {
	if e.ID != "" {
		return fmt.Sprintf("client: server error %s for %s: %s", e.Code, e.ID, e.Message)
	}
	return fmt.Sprintf("client: server error %s: %s", e.Code, e.Message)
}

// IsRetriable reports whether err is temporary: retrying the same request
// later (with the same id) may succeed. It is true for the server codes
// rate_limited, overloaded, internal and shutting_down, and for
// connection-level failures (*CloseError, except protocol errors this client
// cannot fix by retrying, and handshake statuses 408, 429 and 5xx), and
// for ErrNotConnected. It is false for ErrUnauthorized, bad_request,
// unknown_type, the group codes and unknown codes.
func IsRetriable(err error) bool {
	if errors.Is(err, ErrNotConnected) {
		return true
	}
	var se *ServerError
	if errors.As(err, &se) {
		return retriableCode(se.Code)
	}
	var he *HandshakeError
	if errors.As(err, &he) {
		return he.StatusCode == 408 || he.StatusCode == 429 || he.StatusCode >= 500
	}
	var ce *CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case CloseProtocolError, CloseUnsupportedData, CloseInvalidPayload, CloseTooBig, CloseReplaced:
			return false
		}
		return true
	}
	return false
}

func retriableCode(code string) bool {
	switch code {
	case CodeRateLimited, CodeOverloaded, CodeInternal, CodeShuttingDown:
		return true
	}
	return false
}

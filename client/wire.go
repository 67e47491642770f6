package client

import "encoding/json"

// Client frames of protocol v1.

// sendFrame is a send to a user (To) or to a group (Group), never both.
type sendFrame struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	To    string `json:"to,omitempty"`
	Group string `json:"group,omitempty"`
	Body  string `json:"body"`

	// Attachment is sent whole, so that the outbox keeps what the Ack
	// reports after a restart; the server reads only its asset_id.
	Attachment *Attachment `json:"attachment,omitempty"`
}

// target is the conversation a send goes to: its group or its recipient.
func (f *sendFrame) target() string {
	if f.Group != "" {
		return f.Group
	}
	return f.To
}

type receiptFrame struct {
	Type   string   `json:"type"`
	ID     string   `json:"id,omitempty"`
	Status Status   `json:"status"`
	MsgIDs []string `json:"msg_ids"`
}

type syncFrame struct {
	Type  string `json:"type"`
	After uint64 `json:"after"`
}

// serverFrame is the union of the server frames' fields this package
// reads. Unknown fields are ignored, as the protocol requires. Fields whose
// JSON type differs between frame types ("members" is a list of names in a
// group event and of objects in a group.info ack; "online" and "last_seen"
// are a bool and a time in a presence frame and strings in a privacy ack)
// are kept raw and decoded by the frame that owns them.
type serverFrame struct {
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	Seq      uint64          `json:"seq"`
	MsgID    string          `json:"msg_id"`
	From     string          `json:"from"`
	To       string          `json:"to"`
	Group    string          `json:"group"`
	Body     string          `json:"body"`
	TS       int64           `json:"ts"`
	Status   string          `json:"status"`
	MsgIDs   []string        `json:"msg_ids"`
	By       string          `json:"by"`
	All      bool            `json:"all"`
	Event    string          `json:"event"`
	Name     string          `json:"name"`
	Icon     string          `json:"icon"`
	User     string          `json:"user"`
	Stop     bool            `json:"stop"`
	Members  json.RawMessage `json:"members"`
	Online   json.RawMessage `json:"online"`
	LastSeen json.RawMessage `json:"last_seen"`
	Code     string          `json:"code"`
	Message  string          `json:"message"`

	Attachment *Attachment `json:"attachment"`
}

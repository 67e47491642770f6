package client

// Client frames of protocol v1.
type sendFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	To   string `json:"to"`
	Body string `json:"body"`
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
// reads. Unknown fields are ignored, as the protocol requires.
type serverFrame struct {
	Type    string   `json:"type"`
	ID      string   `json:"id"`
	Seq     uint64   `json:"seq"`
	MsgID   string   `json:"msg_id"`
	From    string   `json:"from"`
	To      string   `json:"to"`
	Body    string   `json:"body"`
	TS      int64    `json:"ts"`
	Status  string   `json:"status"`
	MsgIDs  []string `json:"msg_ids"`
	By      string   `json:"by"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
}

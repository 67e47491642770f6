package protocol

// Error codes sent in error frames. They are stable: clients switch on
// them. docs/protocol.md lists what each means and what a client should do.
const (
	CodeBadRequest   = "bad_request"   // malformed JSON, a missing or ill-typed field: fix the client
	CodeUnknownType  = "unknown_type"  // a "type" the server does not know: ignore or upgrade
	CodeRateLimited  = "rate_limited"  // over the per-connection message rate: retry later, same id
	CodeOverloaded   = "overloaded"    // the server's queues are full: retry later, same id
	CodeInternal     = "internal"      // the server failed: retry later, same id
	CodeShuttingDown = "shutting_down" // the server is stopping: reconnect elsewhere and retry

	CodeNotFound             = "not_found"              // the group or message does not exist (or expired)
	CodeNotMember            = "not_member"             // you are not a member of the group
	CodeNotAdmin             = "not_admin"              // only the group's admins may do that
	CodeGroupFull            = "group_full"             // the group would exceed its member limit
	CodeTooManyDevices       = "too_many_devices"       // the user has the most devices connected at once
	CodeTooManySubscriptions = "too_many_subscriptions" // over the presence subscriptions of one connection
	CodeInUse                = "in_use"                 // the asset is a profile photo or group icon: replace it first
)

// Error is a protocol error as carried by an error frame.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Decoder errors. They are preallocated so that refusing a frame costs no
// allocation.
var (
	errNotObject   = &Error{CodeBadRequest, "frame is not a JSON object"}
	errSyntax      = &Error{CodeBadRequest, "malformed JSON"}
	errTrailing    = &Error{CodeBadRequest, "data after the JSON object"}
	errControlChar = &Error{CodeBadRequest, "unescaped control character in a string"}
	errEscape      = &Error{CodeBadRequest, "invalid escape in a string"}
	errTooDeep     = &Error{CodeBadRequest, "JSON nested too deeply"}
	errTooManyIDs  = &Error{CodeBadRequest, "msg_ids has more than 256 entries"}
	errTypeType    = &Error{CodeBadRequest, `"type" must be a string`}
	errTypeID      = &Error{CodeBadRequest, `"id" must be a string`}
	errTypeTo      = &Error{CodeBadRequest, `"to" must be a string`}
	errTypeBody    = &Error{CodeBadRequest, `"body" must be a string`}
	errTypeStatus  = &Error{CodeBadRequest, `"status" must be a string`}
	errTypeMsgIDs  = &Error{CodeBadRequest, `"msg_ids" must be an array of strings`}
	errTypeAfter   = &Error{CodeBadRequest, `"after" must be a non-negative integer`}

	errTypeMembers    = &Error{CodeBadRequest, `"members" must be an array of strings`}
	errTooManyMembers = &Error{CodeBadRequest, "members has more than 1024 entries"}
	errTypeUsers      = &Error{CodeBadRequest, `"users" must be an array of strings`}
	errTooManyUsers   = &Error{CodeBadRequest, "users has more than 1024 entries"}
	errTypeGroup      = &Error{CodeBadRequest, `"group" must be a string`}
	errTypeName       = &Error{CodeBadRequest, `"name" must be a string`}
	errTypeMsgID      = &Error{CodeBadRequest, `"msg_id" must be a string`}
	errTypeLastSeen   = &Error{CodeBadRequest, `"last_seen" must be a string`}
	errTypeOnline     = &Error{CodeBadRequest, `"online" must be a string`}
	errTypeStop       = &Error{CodeBadRequest, `"stop" must be true or false`}
	errTypeAttachment = &Error{CodeBadRequest, `"attachment" must be an object`}
	errTypeAssetID    = &Error{CodeBadRequest, `"attachment"."asset_id" must be a string`}
	errTypeAbout      = &Error{CodeBadRequest, `"about" must be a string`}
	errTypePhoto      = &Error{CodeBadRequest, `"photo" must be a string`}
	errTypeIcon       = &Error{CodeBadRequest, `"icon" must be a string`}
)

package gateway

import (
	"strconv"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/protocol"
)

// Profiles: profile.set and profile.get go to the Service's committer,
// which keeps them (chat/profile.go) and checks the name and about lines;
// the gateway checks the shape of the frame.

const (
	msgBadPhoto = `"photo" must be an asset id, as the upload returned it, or "" to remove the photo`
	msgBadIcon  = `"icon" must be an asset id, as the upload returned it, or "" to remove the icon`
)

// profile handles profile.set and profile.get.
func (l *loop) profile(c *wsConn, r *protocol.Request, now int64) {
	if !r.HasID || !validID(r.ID) {
		l.writeError(c, r.ID, protocol.CodeBadRequest, msgNeedID)
		return
	}
	if r.Type == protocol.TypeProfileGet {
		l.profileGet(c, r, now)
		return
	}
	switch {
	case !r.HasName && !r.HasAbout && !r.HasPhoto:
		l.writeError(c, r.ID, protocol.CodeBadRequest, `profile.set needs "name", "about" or "photo"`)
		return
	case !validAssetRef(r.Photo):
		l.writeError(c, r.ID, protocol.CodeBadRequest, msgBadPhoto)
		return
	}
	q := getReq(c, now, len(r.ID))
	q.Kind, q.ack = chat.KindProfile, true
	q.ClientID = q.keep(r.ID)
	// Strings, not the frame's bytes: the committer keeps what it is given
	// past this frame, and string() copies.
	u := &chat.ProfileUpdate{}
	if r.HasName {
		u.Name = new(string(r.Name))
	}
	if r.HasAbout {
		u.About = new(string(r.About))
	}
	if r.HasPhoto {
		u.Photo = new(string(r.Photo))
	}
	q.Profile = u
	l.submit(c, q, r.ID)
}

func (l *loop) profileGet(c *wsConn, r *protocol.Request, now int64) {
	if !r.HasUsers || len(r.Users) == 0 || len(r.Users) > chat.MaxProfileUsers {
		l.writeError(c, r.ID, protocol.CodeBadRequest, msgProfileUsers)
		return
	}
	need := len(r.ID)
	for _, u := range r.Users {
		if !validUser(u) {
			l.writeError(c, r.ID, protocol.CodeBadRequest, msgBadUsers)
			return
		}
		need += len(u)
	}
	q := getReq(c, now, need)
	q.Kind, q.ack = chat.KindProfile, true
	q.ClientID = q.keep(r.ID)
	for _, u := range r.Users {
		q.Members = append(q.Members, q.keep(u))
	}
	l.submit(c, q, r.ID)
}

// msgProfileUsers states profile.get's limit.
var msgProfileUsers = `"users" must list 1 to ` + strconv.Itoa(chat.MaxProfileUsers) + ` user ids`

// validAssetRef accepts an asset id (the shape of assets.NewID's, which is
// a message id's) or "", which removes a photo or an icon.
func validAssetRef(b []byte) bool {
	return len(b) == 0 || validMsgIDs([][]byte{b})
}

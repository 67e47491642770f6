package fakeserver

import "encoding/json"

// Profiles (profile.set, profile.get) and the check group.icon shares
// with profile photos: the image must be the user's own upload.

type profile struct {
	name, about, photo string
	updated            int64
}

// profileOp answers profile.set and profile.get. data is the frame as
// sent: profile.set tells a field sent empty from one not sent.
func (s *Server) profileOp(fc *wsConn, f *Frame, data []byte, now int64) {
	if f.Type == "profile.get" {
		if len(f.Users) == 0 || len(f.Users) > 256 {
			fc.fail(f, "bad_request", `"users" must list 1 to 256 user ids`)
			return
		}
		out := make([]map[string]any, 0, len(f.Users))
		for _, u := range f.Users {
			out = append(out, s.profileJSON(u))
		}
		fc.ack(f, map[string]any{"profiles": out})
		return
	}
	var set struct{ Name, About, Photo *string }
	if err := json.Unmarshal(data, &set); err != nil || set.Name == nil && set.About == nil && set.Photo == nil {
		fc.fail(f, "bad_request", `profile.set needs "name", "about" or "photo"`)
		return
	}
	if set.Photo != nil && *set.Photo != "" {
		if code, msg := s.pin(*set.Photo, fc.user, "*"); code != "" {
			fc.fail(f, code, msg)
			return
		}
	}
	p := s.profiles[fc.user]
	if p == nil {
		p = &profile{}
		s.profiles[fc.user] = p
	}
	for _, x := range []struct{ from, to *string }{{set.Name, &p.name}, {set.About, &p.about}, {set.Photo, &p.photo}} {
		if x.from != nil {
			*x.to = *x.from
		}
	}
	p.updated = now
	fc.ack(f, map[string]any{"profile": s.profileJSON(fc.user)})
}

// profileJSON is user's profile as the server sends it. Caller holds s.mu.
func (s *Server) profileJSON(user string) map[string]any {
	v := map[string]any{"user": user}
	p := s.profiles[user]
	if p == nil {
		return v
	}
	for k, x := range map[string]string{"name": p.name, "about": p.about, "photo": p.photo} {
		if x != "" {
			v[k] = x
		}
	}
	v["updated"] = p.updated
	return v
}

// pin lets grantee ("*": everyone, "#group": its members) read asset id,
// an image user uploaded; else it returns an error code and message.
// Caller holds s.mu.
func (s *Server) pin(id, user, grantee string) (code, msg string) {
	a := s.assets[id]
	switch {
	case a == nil || a.owner != user:
		return "not_found", "no such asset"
	case a.meta["kind"] != "image":
		return "bad_request", "a photo or icon must be an image"
	}
	a.readers[grantee] = true
	return "", ""
}

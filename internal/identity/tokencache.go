package identity

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// tokenHash keys the token cache: the SHA-256 of the raw token, so the
// cache never holds a bearer credential itself.
type tokenHash = [sha256.Size]byte

// cachedToken is what a successful verification leaves behind.
type cachedToken struct {
	hash tokenHash
	// principal is what a hit answers, groups included, so that a cached
	// token grants exactly what verifying it again would. Its Groups slice
	// belongs to the cache and is copied on the way out.
	principal Principal
	// kid is the header kid the signing key was looked up by ("" for a
	// token without one, which only a single-key set accepts) and key the
	// fingerprint of that key: a hit needs the current key set to still
	// give that kid that key.
	kid string
	key keyFingerprint
	// until is when the entry dies: the token's exp plus the leeway (the
	// moment verification starts refusing it as expired) or, for a JWKS
	// URL, the CacheTTL of the key set that verified it, whichever is first.
	until time.Time
}

// tokenCache is a bounded LRU of verified tokens. Only successes go in, so
// junk tokens cannot fill it: each entry cost a signature check.
type tokenCache struct {
	mu      sync.Mutex
	size    int
	entries map[tokenHash]*list.Element // of *cachedToken
	lru     list.List                   // most recently used first
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{size: size, entries: make(map[tokenHash]*list.Element)}
}

// get returns the live entry for h, dropping a dead one.
func (c *tokenCache) get(h tokenHash, now time.Time) (cachedToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[h]
	if !ok {
		return cachedToken{}, false
	}
	e := el.Value.(*cachedToken)
	if !now.Before(e.until) {
		c.removeElement(el)
		return cachedToken{}, false
	}
	c.lru.MoveToFront(el)
	return *e, true
}

// put adds e unless it is already dead, evicting the least recently used
// entry when the cache is full.
func (c *tokenCache) put(e cachedToken, now time.Time) {
	if !now.Before(e.until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.hash]; ok {
		*el.Value.(*cachedToken) = e
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.size {
		c.removeElement(c.lru.Back())
	}
	c.entries[e.hash] = c.lru.PushFront(&e)
}

func (c *tokenCache) remove(h tokenHash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[h]; ok {
		c.removeElement(el)
	}
}

func (c *tokenCache) removeElement(el *list.Element) {
	delete(c.entries, el.Value.(*cachedToken).hash)
	c.lru.Remove(el)
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

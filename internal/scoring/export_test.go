package scoring

// Drain waits until every queued LLM question is answered (tests only).
func (b *Behavior) Drain() {
	if b.ask != nil {
		b.ask.Wait()
	}
}

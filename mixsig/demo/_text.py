"""Template text for the demo corpus: empathetic vs neutral wording, graded by a signed cue strength."""

from __future__ import annotations

import numpy as np

TOPICS = (
    "exam", "job interview", "move", "project", "surgery", "visa", "budget", "trip", "deadline", "appointment",
    "landlord", "car", "wedding", "course", "shift",
)

EMPATHETIC_STRONG = (
    "I'm so sorry you had to go through that.",
    "That sounds really hard, and it makes sense that you feel this way.",
    "I can hear how much the {topic} means to you.",
    "You're not alone in this, I'm here for you.",
    "It's completely understandable to feel overwhelmed.",
    "Thank you for trusting me with something so personal.",
    "I really feel for you, that must hurt.",
    "Take all the time you need, your feelings matter.",
    "Oh no, I'm sorry the {topic} went so badly for you.",
    "That must have been frightening, I'm glad you told me.",
)
EMPATHETIC_MILD = (
    "I see, that must have been tough.",
    "I hear you.",
    "That can't have been easy with the {topic}.",
    "I get why that bothers you.",
    "That sounds stressful.",
    "Hmm, I understand.",
)
NEUTRAL_MILD = (
    "Okay, let's look at the {topic} again.",
    "So the {topic} was moved to next week.",
    "Right, and then what happened?",
    "We can talk about the {topic} later.",
    "Sure, go on.",
    "And when was that?",
)
NEUTRAL_STRONG = (
    "The {topic} form is due on Friday at noon.",
    "Please update the spreadsheet with the new figures.",
    "The next step is to submit the form online.",
    "The train leaves from platform four at nine.",
    "Our meeting about the {topic} starts at three.",
    "Click the settings button and choose export.",
    "The total comes to forty two dollars.",
    "Let's move on to the next item on the agenda.",
    "The {topic} paperwork goes to the front desk.",
    "Write the reference number at the top of the page.",
)


def make_text(strength: float, rng: np.random.Generator) -> str:
    """A 2-3 sentence utterance. ``strength`` in [-1, 1]: +1 clearly empathetic, -1 clearly neutral, 0 mixed.

    Each sentence is empathetic with probability ``(1 + sign(strength) * sqrt(|strength|)) / 2`` and from the
    strong pool with probability ``|strength|``; the topic is shared by both classes (it carries no label signal).
    """
    topic = TOPICS[rng.integers(len(TOPICS))]
    n = int(rng.integers(2, 4))
    p_emp = (1.0 + np.sign(strength) * np.sqrt(abs(strength))) / 2.0
    sentences = []
    for _ in range(n):
        empathetic = rng.random() < p_emp
        strong = rng.random() < abs(strength)
        pool = (EMPATHETIC_STRONG if strong else EMPATHETIC_MILD) if empathetic else \
            (NEUTRAL_STRONG if strong else NEUTRAL_MILD)
        sentence = pool[rng.integers(len(pool))].format(topic=topic)
        if sentence not in sentences:
            sentences.append(sentence)
    return " ".join(sentences)

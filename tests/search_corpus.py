"""A labelled journal for measuring search: 32 entries, 14 queries.

Keyword queries share words with their answers; paraphrase queries share
meaning but (almost) no words: "an argument with my sibling" should find
"a fight with my brother". Each query lists the entries that answer it.
"""

ENTRIES = [
    "I had a huge fight with my brother about who visits Mum this weekend.",  # 0
    "My sister never calls unless she needs money, and it hurts.",  # 1
    "Work was brutal today; the deadline for the quarterly report got moved up again.",  # 2
    "My manager criticised my presentation in front of the whole team.",  # 3
    "I couldn't sleep again last night, lying awake until four in the morning.",  # 4
    "Insomnia is wrecking me; I keep waking at 3am with my heart racing.",  # 5
    "Went for a long run by the river and felt clear-headed for the first time in weeks.",  # 6
    "Yoga class this morning; my shoulders finally let go of some tension.",  # 7
    "Grandpa's funeral was on Tuesday. I still can't believe he's gone.",  # 8
    "I miss my grandfather's stories and the smell of his workshop.",  # 9
    "Had coffee with Priya and laughed so much my face hurt.",  # 10
    "I feel lonely in this new city; I don't know anyone here yet.",  # 11
    "Moved into the new flat; boxes everywhere and the kitchen tap leaks.",  # 12
    "Paid off the credit card today. Such a relief to see a zero balance.",  # 13
    "I'm anxious about the rent going up next month and whether I can afford it.",  # 14
    "Started therapy sessions; the first one was awkward but I'll keep going.",  # 15
    "Cooked lasagne for my partner and we ate on the balcony at sunset.",  # 16
    "My partner and I argued about chores and went to bed without talking.",  # 17
    "The dog got sick and we spent the night at the vet.",  # 18
    "Our cat Miso curled up on my chest while I read; a perfect lazy Sunday.",  # 19
    "Got the job offer! Starting in March as a senior designer.",  # 20
    "Rejected from another position after the final interview round.",  # 21
    "I've been drinking more wine in the evenings than I'd like to admit.",  # 22
    "Skipped lunch again because I felt too stressed to eat.",  # 23
    "Called Dad for his birthday; he sounded frail and tired.",  # 24
    "My father's health scares me; the doctors want more tests.",  # 25
    "Finished reading a novel about a lighthouse keeper; it made me cry.",  # 26
    "Painted for two hours without checking my phone once.",  # 27
    "Gratitude list: warm socks, a kind text from Sam, sunshine at noon.",  # 28
    "I'm thankful my neighbour helped carry the groceries up the stairs.",  # 29
    "Traffic made me late for the dentist and I snapped at the receptionist.",  # 30
    "Planning a trip to Lisbon in spring with my best friend.",  # 31
]

# (kind, query, relevant entry indexes)
QUERIES = [
    ("keyword", "fight with my brother", {0}),
    ("keyword", "quarterly report deadline", {2}),
    ("keyword", "grandfather", {9}),
    ("keyword", "credit card", {13}),
    ("keyword", "rent", {14}),
    ("keyword", "therapy", {15}),
    ("keyword", "Lisbon trip", {31}),
    ("paraphrase", "an argument with my sibling", {0, 1}),
    ("paraphrase", "trouble sleeping", {4, 5}),
    ("paraphrase", "grief after a death in the family", {8, 9}),
    ("paraphrase", "exercise that made me feel better", {6, 7}),
    ("paraphrase", "worried about money", {14, 13}),
    ("paraphrase", "conflict with my boyfriend or girlfriend", {17}),
    ("paraphrase", "things I am grateful for", {28, 29}),
    ("paraphrase", "my pet was unwell", {18}),
    ("paraphrase", "being turned down for a job", {21}),
]

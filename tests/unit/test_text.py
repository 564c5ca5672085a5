import tensorflow as tf

from textops.components import text


def tokens(s: str) -> list[str]:
    return [t.decode() for t in text.tokenize(tf.constant([s])).to_list()[0]]


def test_lowercases_and_splits_on_punctuation_and_html_remnants():
    assert tokens("Hello, WORLD! It's 2024 &lt;b&gt;") == ["hello", "world", "it", "s", "2024", "lt", "b", "gt"]


def test_unicode_letters_and_accents_survive():
    assert tokens("Ça VA très BIEN") == ["ça", "va", "très", "bien"]


def test_chinese_without_spaces_is_split_per_character():
    assert tokens("我喜欢机器学习") == list("我喜欢机器学习")


def test_thai_keeps_combining_marks_with_their_base_character():
    out = tokens("สวัสดี")
    assert len(out) > 1
    assert "".join(out) == "สวัสดี"
    assert all(not ("\u0e31" <= t[0] <= "\u0e3a" or "\u0e47" <= t[0] <= "\u0e4e") for t in out)


def test_empty_and_punctuation_only_texts_have_no_tokens():
    out = text.tokenize(tf.constant(["", "!!! ...", "  "])).to_list()
    assert out == [[], [], []]


def test_max_tokens_truncates():
    out = text.tokenize(tf.constant(["a b c d e"]), max_tokens=3).to_list()[0]
    assert out == [b"a", b"b", b"c"]


def test_ngrams_of_words_and_of_chinese_characters():
    grams = text.text_to_ngrams(tf.constant(["New York city", "机器学习"]), max_n=2, boundaries=False).to_list()
    assert [g.decode() for g in grams[0]] == ["new", "york", "city", "new york", "york city"]
    assert "机 器" in [g.decode() for g in grams[1]]
    assert len(grams[1]) == 4 + 3


def test_runs_of_no_space_script_characters_get_wider_ngrams_and_other_text_does_not():
    grams = text.text_to_ngrams(
        tf.constant(["机器学习 ok", "New York city", "ขอบคุณ"]), max_n=2, boundaries=False, char_max_n=3
    ).to_list()
    chinese = [g.decode() for g in grams[0]]
    assert chinese[:9] == ["机", "器", "学", "习", "ok", "机 器", "器 学", "学 习", "习 ok"]  # as without char_max_n
    assert chinese[9:] == ["机 器 学", "器 学 习"]  # trigrams of characters only: "学 习 ok" is not one
    assert len(grams[1]) == 5  # words: unigrams and bigrams, as before
    thai = [g.decode() for g in grams[2]]
    assert "ข อ บ" in thai and "ค\u0e38 ณ" in thai  # a combining vowel stays with its consonant
    same = text.text_to_ngrams(tf.constant(["机器学习 ok"]), max_n=2, boundaries=False, char_max_n=2).to_list()
    assert [g.decode() for g in same[0]] == chinese[:9]


def test_boundary_ngrams_mark_where_the_text_starts_and_ends():
    grams = text.text_to_ngrams(tf.constant(["How many dogs", ""]), max_n=2).to_list()
    assert [g.decode() for g in grams[0]] == ["how", "many", "dogs", "<s> how", "how many", "many dogs", "dogs </s>"]
    assert [g.decode() for g in grams[1]] == ["<s> </s>"]  # empty text: one (uninformative) feature

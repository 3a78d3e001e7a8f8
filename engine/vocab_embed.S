/* The GPT-2 vocabulary (weights/vocab/, see README there) embedded in the
 * library, so synthetic models carry the real vocabulary wherever the binary
 * runs. Symbols: gpt2c_vocab_json[_end], gpt2c_vocab_bpe[_end]. */
    .section .rodata
    .global gpt2c_vocab_json
    .global gpt2c_vocab_json_end
    .global gpt2c_vocab_bpe
    .global gpt2c_vocab_bpe_end
    .balign 16
gpt2c_vocab_json:
    .incbin "encoder.json"
gpt2c_vocab_json_end:
    .byte 0
    .balign 16
gpt2c_vocab_bpe:
    .incbin "vocab.bpe"
gpt2c_vocab_bpe_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits

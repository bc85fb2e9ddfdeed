// Registered 8x8-bit signed multiply-accumulate with a 24-bit accumulator.
// Reference design for hwgen.synth tests (tests/test_synth.py).
module mac (
    input  wire               clk,
    input  wire               rst,
    input  wire               en,
    input  wire signed [7:0]  a,
    input  wire signed [7:0]  b,
    output reg  signed [23:0] acc
);
    reg signed [7:0]  a_r, b_r;
    reg signed [15:0] p_r;
    always @(posedge clk) begin
        a_r <= a;
        b_r <= b;
        p_r <= a_r * b_r;
        if (rst)
            acc <= 24'sd0;
        else if (en)
            acc <= acc + p_r;
    end
endmodule
